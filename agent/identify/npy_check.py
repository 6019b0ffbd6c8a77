"""Structural check for NumPy .npy arrays: the header is a Python dict literal describing the array.

Layout (numpy lib/format.py): "\\x93NUMPY", major, minor, header length (u16 in version 1, u32 in 2 and
3), then the header `{'descr': ..., 'fortran_order': ..., 'shape': (...)}` padded with spaces. The literal
is parsed with ast.literal_eval (no code runs), and only up to its declared, capped length.
"""

from __future__ import annotations

import ast
import struct
from typing import Any

from weightwarden.agent.identify.details import clip
from weightwarden.agent.safe_open import read_at

MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 64 << 10
_PREAMBLE = {1: (8, "<H"), 2: (8, "<I"), 3: (8, "<I")}  # major version -> (length offset, length format)


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if len(head) < 10 or head[:6] != MAGIC or head[6] not in _PREAMBLE:
        return None
    major, minor = head[6], head[7]
    offset, length_format = _PREAMBLE[major]
    (header_len,) = struct.unpack_from(length_format, head, offset)
    start = offset + struct.calcsize(length_format)
    if header_len > MAX_HEADER_BYTES or start + header_len > size:
        return None
    end = start + header_len
    raw = head[start:end] if end <= len(head) else read_at(fd, start, header_len)
    header = _parse(raw, "utf-8" if major >= 3 else "latin1")
    if header is None:
        return None
    descr, shape, fortran_order = header.get("descr"), header.get("shape"), header.get("fortran_order")
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        return None
    if not isinstance(fortran_order, bool) or not isinstance(descr, str | list):
        return None
    dtype = descr if isinstance(descr, str) else repr(descr)
    return {
        "version": f"{major}.{minor}",
        "dtype": clip(dtype, 256),
        "shape": list(shape),
        "fortran_order": fortran_order,
        # Object arrays are stored as a pickle after the header: loading them runs code.
        "object_dtype": _has_objects(descr),
        "header_length": header_len,
    }


def _parse(raw: bytes, encoding: str) -> dict[str, Any] | None:
    try:
        value = ast.literal_eval(raw.decode(encoding))
    # Anything the parser throws at a hostile literal (bad syntax, deep nesting, huge numbers) is a rejection.
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _has_objects(descr: Any) -> bool:
    """True when the dtype (plain, or structured: [(name, type[, shape]), ...]) holds Python objects."""
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list):
        return any(isinstance(field, tuple) and len(field) >= 2 and _has_objects(field[1]) for field in descr)
    return False
