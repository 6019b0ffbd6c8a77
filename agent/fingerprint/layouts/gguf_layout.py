"""GGUF: walk the key/value section to the tensor infos (name, dims, type, offset) and the data start.

Dims are stored innermost first (ggml order); reversed they are the row-major shape numpy and safetensors
use, so a tensor exported with gguf.GGUFWriter keeps the fingerprint of its source. F32, F16, BF16 and F64
tensors get both prints; block-quantised ones (Q8_0, Q4_K, ...) hold no per-element sign bit, so they get
only the similarity block, decoded from the first block of each of their first rows (ggml_blocks.py).
Quantised data in a big-endian file is not decoded (llama.cpp writes none).

Memory ceiling: the header is read in 1 MiB chunks and key/value contents are skipped, never kept; what
stays is one record per tensor info, at most MAX_TENSORS (131,072; real GGUF files have about a thousand,
llama.cpp merges MoE experts into 3-D tensors) with names of at most MAX_NAME_BYTES (the spec allows 64):
about 50 MiB at the caps. More tensors raise OverBudget (reported; the file is still hashed).
"""

from __future__ import annotations

import struct

from weightwarden.agent.fingerprint import encodings, ggml_blocks
from weightwarden.agent.fingerprint.layouts.budget import OverBudget
from weightwarden.agent.fingerprint.tensors import TensorSpan
from weightwarden.agent.safe_open import read_at

MAGIC = b"GGUF"
MAX_HEADER_BYTES = 256 << 20  # the KV section holds the tokenizer: megabytes, not hundreds of them
MAX_TENSORS = 1 << 17
MAX_NAME_BYTES = 256  # gguf.md: a tensor name is at most 64 bytes; some slack for writers that overrun it
MAX_KV = 1 << 16
MAX_DIMS = 8
CHUNK = 1 << 20
DEFAULT_ALIGNMENT = 32
FLOAT_TYPES = {0: 4, 1: 2, 30: 2, 28: 8}  # GGML_TYPE_F32, F16, BF16, F64 -> item size
BF16 = 30
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4


class _Reader:
    """Sequential reads through a chunk buffer, bounded by the file size and MAX_HEADER_BYTES."""

    def __init__(self, fd: int, size: int, order: str) -> None:
        self.fd, self.size, self.order = fd, size, order
        self.buffer, self.buffer_start, self.pos = b"", 0, 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if count < 0 or end > self.size or end > MAX_HEADER_BYTES:
            raise ValueError("GGUF header runs past its bounds")
        if end > self.buffer_start + len(self.buffer):
            self.buffer_start = self.pos
            self.buffer = read_at(self.fd, self.pos, max(count, CHUNK))
            if len(self.buffer) < count:
                raise ValueError("file shrank")
        data = self.buffer[self.pos - self.buffer_start:end - self.buffer_start]
        self.pos = end
        return data

    def unpack(self, code: str) -> int:
        fmt = self.order + code
        return int(struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0])

    def skip_value(self, value_type: int, length_code: str, depth: int = 0) -> None:
        if value_type in _SCALAR_SIZES:
            self.take(_SCALAR_SIZES[value_type])
        elif value_type == _STRING:
            self.take(self.unpack(length_code))
        elif value_type == _ARRAY and depth < 4:
            item_type, count = self.unpack("I"), self.unpack(length_code)
            if item_type in _SCALAR_SIZES:
                self.take(count * _SCALAR_SIZES[item_type])
                return
            if count * 4 > self.size - self.pos:
                raise ValueError("array count larger than the file")
            for _ in range(count):
                self.skip_value(item_type, length_code, depth + 1)
        else:
            raise ValueError(f"unknown GGUF value type {value_type}")


def spans(fd: int, size: int) -> list[TensorSpan]:
    head = read_at(fd, 0, 8)
    if len(head) < 8 or head[:4] != MAGIC:
        return []
    order = "<" if 1 <= struct.unpack_from("<I", head, 4)[0] <= 3 else ">"
    version = struct.unpack_from(order + "I", head, 4)[0]
    if not 1 <= version <= 3:
        return []
    length_code = "I" if version == 1 else "Q"
    reader = _Reader(fd, size, order)
    reader.take(8)
    tensor_count, kv_count = reader.unpack(length_code), reader.unpack(length_code)
    if kv_count > MAX_KV:
        return []
    if tensor_count > MAX_TENSORS:
        raise OverBudget(f"GGUF header too large: {tensor_count:,} tensors > {MAX_TENSORS:,}")
    alignment = DEFAULT_ALIGNMENT
    for _ in range(kv_count):
        key = reader.take(reader.unpack(length_code))
        value_type = reader.unpack("I")
        if key == b"general.alignment" and value_type == _UINT32:
            alignment = reader.unpack("I") or DEFAULT_ALIGNMENT
        else:
            reader.skip_value(value_type, length_code)
    infos = []
    for _ in range(tensor_count):
        name_length = reader.unpack(length_code)
        if name_length > MAX_NAME_BYTES:
            return []
        name = reader.take(name_length).decode("utf-8", errors="replace")
        n_dims = reader.unpack("I")
        if n_dims > MAX_DIMS:
            return []
        dims = [reader.unpack(length_code) for _ in range(n_dims)]
        tensor_type, offset = reader.unpack("I"), reader.unpack("Q")
        infos.append((name, tuple(reversed(dims)), tensor_type, offset))
    data_start = -(-reader.pos // alignment) * alignment
    found = []
    for name, shape, tensor_type, offset in infos:
        itemsize = FLOAT_TYPES.get(tensor_type)
        if itemsize is not None:
            encoding = encodings.BF16_LE if tensor_type == BF16 else encodings.ieee(itemsize, order == "<")
            if tensor_type == BF16 and order == ">":
                encoding = encodings.BF16_BE
            found.append(TensorSpan(name, shape, data_start + offset, itemsize, itemsize - 1 if order == "<" else 0,
                                    encoding))
        elif order == "<" and tensor_type in ggml_blocks.DECODABLE:
            found.append(TensorSpan(name, shape, data_start + offset, 0, 0, encodings.ggml(tensor_type)))
    return found
