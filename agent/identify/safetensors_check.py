"""Structural check for safetensors: the JSON header must describe a tensor buffer that fills the file.

Layout: u64 LE header length N, N bytes of JSON ({name: {dtype, shape, data_offsets}, "__metadata__": {}}),
then the data buffer. Mirrors the validation of the reference parser (safetensors/src/tensor.rs).
"""

from __future__ import annotations

import json
import struct
from typing import Any

from weightwarden.agent.identify.details import truncate_string_map
from weightwarden.agent.safe_open import read_at

# The reference parser's limit; also the most we ever read for a header.
MAX_HEADER_BYTES = 100_000_000
METADATA_KEY = "__metadata__"
# Element width in bits; sub-byte float formats (F4, F6) pack several elements per byte.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8,
    "U16": 16, "I16": 16, "F16": 16, "BF16": 16,
    "U32": 32, "I32": 32, "F32": 32,
    "U64": 64, "I64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


class _Invalid(Exception):
    pass


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if len(head) < 8:
        return None
    (header_len,) = struct.unpack_from("<Q", head)
    if not 2 <= header_len <= MAX_HEADER_BYTES or 8 + header_len > size:
        return None
    # Bounded by the cap and by the real file size checked above: a hostile length never allocates.
    header = head[8:8 + header_len] if 8 + header_len <= len(head) else read_at(fd, 8, header_len)
    if len(header) != header_len:
        return None  # the file shrank while we read it
    try:
        return _validate(_parse(header), data_len=size - 8 - header_len, header_len=header_len)
    except _Invalid:
        return None


def _parse(header: bytes) -> dict[str, Any]:
    if not header.lstrip(b" ").startswith(b"{"):
        raise _Invalid
    try:
        # Decode first: json.loads on bytes guesses UTF-16/32 from zero bytes; the format says UTF-8.
        parsed = json.loads(header.decode("utf-8"))
    # ValueError: bad JSON or UTF-8, or an integer too long to convert; RecursionError: deep nesting.
    except (ValueError, RecursionError):
        raise _Invalid from None
    if not isinstance(parsed, dict):
        raise _Invalid
    return parsed


def _validate(parsed: dict[str, Any], data_len: int, header_len: int) -> dict[str, Any]:
    metadata = parsed.pop(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _Invalid
    spans: list[tuple[int, int]] = []
    parameters = 0
    dtypes: set[str] = set()
    for entry in parsed.values():
        dtype, begin, end, elements = _tensor(entry, data_len)
        spans.append((begin, end))
        parameters += elements
        dtypes.add(dtype)
    # Sorted by offsets the tensors must tile the buffer from 0: no hole, no overlap.
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise _Invalid
        position = end
    if position > data_len:
        raise _Invalid  # truncated: the header describes more data than the file holds
    metadata_map, metadata_truncated = truncate_string_map(metadata)
    return {
        "tensor_count": len(spans),
        "parameter_count": parameters,
        "dtypes": sorted(dtypes),
        "metadata": metadata_map,
        "metadata_truncated": metadata_truncated,
        "header_length": header_len,
        # Bytes after the described data: the reference loader rejects these, so they hint at a polyglot.
        "appended_bytes": data_len - position,
    }


def _tensor(entry: Any, data_len: int) -> tuple[str, int, int, int]:
    """(dtype, begin, end, element count) of one header entry; raises _Invalid when malformed."""
    if not isinstance(entry, dict):
        raise _Invalid
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(offsets, list):
        raise _Invalid
    if len(offsets) != 2 or not all(_is_count(value) for value in (*offsets, *shape)):
        raise _Invalid
    begin, end = offsets
    if begin > end or end > data_len:
        raise _Invalid
    # Stop multiplying once past the buffer size: a hostile shape must not build a huge integer.
    elements = 0 if 0 in shape else 1
    for dim in shape:
        elements *= dim
        if elements > data_len * 8:
            raise _Invalid
    bits = DTYPE_BITS.get(dtype)
    # Unknown (newer) dtypes still count as tensors; only their byte size cannot be checked.
    if bits is not None and (elements * bits + 7) // 8 != end - begin:
        raise _Invalid
    return dtype, begin, end, elements


def _is_count(value: Any) -> bool:
    # bool is an int subclass; JSON true/false is not a count.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
