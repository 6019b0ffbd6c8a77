"""safetensors: the JSON header gives every tensor's dtype, shape and byte range (little-endian data)."""

from __future__ import annotations

import json
import struct

from weightwarden.agent.fingerprint.tensors import TensorSpan
from weightwarden.agent.safe_open import read_at

MAX_HEADER_BYTES = 100_000_000  # the reference parser's limit
FLOAT_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}


def spans(fd: int, size: int) -> list[TensorSpan]:
    if size < 8:
        return []
    (header_len,) = struct.unpack("<Q", read_at(fd, 0, 8))
    if not 2 <= header_len <= MAX_HEADER_BYTES or 8 + header_len > size:
        return []
    header = json.loads(read_at(fd, 8, header_len).decode("utf-8"))
    if not isinstance(header, dict):
        return []
    base = 8 + header_len
    found = []
    for name, entry in header.items():
        if name == "__metadata__" or not isinstance(entry, dict):
            continue
        itemsize = FLOAT_SIZES.get(entry.get("dtype"))  # type: ignore[arg-type]
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if itemsize is None or not isinstance(shape, list) or not isinstance(offsets, list):
            continue
        if not _ints(shape) or not _ints(offsets) or len(offsets) != 2:
            continue
        span = TensorSpan(name, tuple(shape), base + offsets[0], itemsize, itemsize - 1)
        if span.nbytes == offsets[1] - offsets[0]:
            found.append(span)
    return found


def _ints(value: object) -> bool:
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)
