"""How a tensor's elements are stored in a file, and reading their values back as float32.

The exact tensor prints need only each element's sign bit; the similarity blocks (blocks.py) need values.
An encoding is a short string carried by each TensorSpan:
- IEEE floats as numpy spells them with their byte order: "<f4", ">f2", "<f8";
- bfloat16 ("bf16<", "bf16>"), the two float8 kinds of safetensors ("f8e4m3", "f8e5m2"), int8 ("|i1");
- a block-quantised GGML tensor: "ggml:<type id>" (ggml_blocks.py decodes whole blocks).
"""

from __future__ import annotations

import numpy as np

from weightwarden.agent.fingerprint import ggml_blocks

BF16_LE, BF16_BE = "bf16<", "bf16>"
F8_E4M3, F8_E5M2 = "f8e4m3", "f8e5m2"
INT8 = "|i1"
_GGML = "ggml:"


def ieee(itemsize: int, little_endian: bool = True) -> str:
    return f"{'<' if little_endian else '>'}f{itemsize}"


def ggml(type_id: int) -> str:
    return f"{_GGML}{type_id}"


def ggml_type(encoding: str) -> int | None:
    """The GGML type id of a block-quantised encoding, else None."""
    return int(encoding[len(_GGML):]) if encoding.startswith(_GGML) else None


def _f8_table(exponent_bits: int, bias: int, ieee_specials: bool) -> np.ndarray:
    """float32 value of each of the 256 float8 bytes (E4M3FN has no infinities: S.1111.111 is NaN)."""
    mantissa_bits = 7 - exponent_bits
    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exponent = (codes >> mantissa_bits) & ((1 << exponent_bits) - 1)
    mantissa = codes & ((1 << mantissa_bits) - 1)
    fraction = mantissa / (1 << mantissa_bits)
    normal = (1 + fraction) * np.exp2(exponent.astype(np.float64) - bias)
    subnormal = fraction * np.exp2(1.0 - bias)
    values = sign * np.where(exponent == 0, subnormal, normal)
    top = (1 << exponent_bits) - 1
    if ieee_specials:
        values = np.where(exponent == top, np.where(mantissa == 0, sign * np.inf, np.nan), values)
    else:
        values = np.where((exponent == top) & (mantissa == (1 << mantissa_bits) - 1), np.nan, values)
    return values.astype(np.float32)


_F8_TABLES = {F8_E4M3: _f8_table(4, 7, False), F8_E5M2: _f8_table(5, 15, True)}


def decodable(encoding: str) -> bool:
    type_id = ggml_type(encoding)
    if type_id is not None:
        return type_id in ggml_blocks.DECODABLE
    return encoding in _F8_TABLES or encoding in (BF16_LE, BF16_BE, INT8) or _ieee_dtype(encoding) is not None


def _ieee_dtype(encoding: str) -> np.dtype | None:
    if len(encoding) == 3 and encoding[0] in "<>" and encoding[1] == "f" and encoding[2] in "248":
        return np.dtype(encoding)
    return None


def row_stride(encoding: str, row_elements: int, itemsize: int) -> int:
    """Bytes of one row of `row_elements` elements (ValueError: not whole GGML blocks)."""
    type_id = ggml_type(encoding)
    return ggml_blocks.row_bytes(type_id, row_elements) if type_id is not None else row_elements * itemsize


def prefix_bytes(encoding: str, count: int, itemsize: int) -> int:
    """Bytes from a row's start that hold its first `count` elements (whole blocks when quantised)."""
    type_id = ggml_type(encoding)
    if type_id is None:
        return count * itemsize
    elements, size = ggml_blocks.BLOCKS[type_id]
    return -(-count // elements) * size


def decode(encoding: str, raw: np.ndarray, count: int) -> np.ndarray:
    """float32 values of the first `count` elements in `raw` (uint8), which starts at an element or block
    boundary; NaN and infinities are returned as they are (the caller sanitises)."""
    type_id = ggml_type(encoding)
    if type_id is not None:
        return ggml_blocks.decode(type_id, raw, count)
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if encoding in _F8_TABLES:
        table: np.ndarray = _F8_TABLES[encoding]
        return np.asarray(table[raw[:count]], dtype=np.float32)
    if encoding == INT8:
        return raw[:count].view(np.int8).astype(np.float32)
    if encoding in (BF16_LE, BF16_BE):
        halves = raw[:2 * count].view("<u2" if encoding == BF16_LE else ">u2").astype(np.uint32)
        return (halves << 16).view(np.float32)
    dtype = _ieee_dtype(encoding)
    if dtype is None:
        raise ValueError(f"unknown element encoding {encoding!r}")
    return raw[:count * dtype.itemsize].view(dtype).astype(np.float32)
