"""NumPy .npy (and each stored member of an .npz): the header literal gives dtype, shape and order."""

from __future__ import annotations

import ast
import struct

from weightwarden.agent.fingerprint import encodings
from weightwarden.agent.fingerprint.tensors import TensorSpan
from weightwarden.agent.safe_open import read_at

MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 64 << 10
FLOAT_KINDS = {"f8": 8, "f4": 4, "f2": 2}


def spans(fd: int, size: int) -> list[TensorSpan]:
    span = array_span(fd, 0, size, "array")
    return [span] if span is not None else []


def array_span(fd: int, start: int, limit: int, name: str) -> TensorSpan | None:
    """The span of the .npy array whose magic is at `start`; `limit` is the end of its bytes."""
    preamble = read_at(fd, start, 12)
    if len(preamble) < 10 or preamble[:6] != MAGIC or preamble[6] not in (1, 2, 3):
        return None
    if preamble[6] > 1 and len(preamble) < 12:
        return None
    if preamble[6] == 1:
        (header_len,), header_start = struct.unpack_from("<H", preamble, 8), start + 10
    else:
        (header_len,), header_start = struct.unpack_from("<I", preamble, 8), start + 12
    if header_len > MAX_HEADER_BYTES or header_start + header_len > limit:
        return None
    header = ast.literal_eval(read_at(fd, header_start, header_len).decode("latin1"))
    if not isinstance(header, dict):
        return None
    descr, shape, fortran = header.get("descr"), header.get("shape"), header.get("fortran_order")
    if not isinstance(descr, str) or not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        return None
    order, kind = descr[:1], descr[1:]
    itemsize = FLOAT_KINDS.get(kind)
    if itemsize is None or order not in "<>=|" or (fortran and sum(d > 1 for d in shape) > 1):
        return None  # not a float array, or column-major: its element order is not the row-major one
    span = TensorSpan(name, shape, header_start + header_len, itemsize, 0 if order == ">" else itemsize - 1,
                      encodings.ieee(itemsize, order != ">"))
    return span if span.offset + span.nbytes <= limit else None
