"""GGML block formats: the geometry of every tensor type a GGUF file can name, and float32 decoders for the
quantised ones we can read.

A quantised GGUF tensor row is a run of fixed-size blocks; each block holds a fixed number of elements as
small integers plus the scale(s) that turn them back into floats. `decode` turns the bytes of a row's first
block(s) into those floats, so quantised tensors can be looked at the way float tensors are; `BLOCKS` and
`row_bytes` say how many bytes a row takes, for every type.

The layouts are those of ggml's block structs and reference dequantisers (llama.cpp ggml-common.h and
ggml-quants.c), restated here as our own numpy code. tests/agent/fingerprint/test_ggml_blocks.py checks
each decoder bit for bit against gguf-py's `gguf.quants.dequantize` (F64, which gguf-py does not read,
against numpy's cast), and a few layouts against blocks built by hand. Products of a float16 scale and the
small integers are exact in float32, and where a block adds an offset (Q4_1, Q5_1, the K-quants' mins) we
multiply and add in ggml's order, so the values are the same to the last bit, signed zeros included (the
tensor prints are made of sign bits).

Little-endian only: every multi-byte field (float16 scales, the uint16/uint32 bit words, F32/F64 values) is
read as little-endian, which is how llama.cpp writes GGUF. A big-endian GGUF (gguf-py can byte-swap a file
for s390x) stores those fields swapped; its quantised tensors are not decoded here, and decoding its bytes
with this module gives wrong values without an error.

Not decodable (in BLOCKS, not in DECODABLE): the IQ1_*/IQ2_*/IQ3_* types (their quants index codebooks of
up to 2,048 grid points that we do not carry), Q8_1 and Q8_K (ggml's scratch formats for dot products, not
written to model files), Q1_0 (no reference decoder in gguf-py to test against), and the integer types.

Hostile bytes: a NaN or infinite scale yields NaN or infinite values, without a warning (the caller
sanitises); sizes are checked before anything is allocated, so the work is bounded by the bytes given,
never by `count`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Bytes = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]

# (ggml type id, name, elements per block, bytes per block) for every id gguf-py knows. The ids missing
# (4, 5, 31-33, 36-38) belonged to formats ggml has removed.
_TYPES: tuple[tuple[int, str, int, int], ...] = (
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 2 + 16),  # f16 d; 32 four-bit quants
    (3, "Q4_1", 32, 2 + 2 + 16),  # f16 d, f16 m; 32 four-bit quants
    (6, "Q5_0", 32, 2 + 4 + 16),  # f16 d; 32 fifth bits; 32 low nibbles
    (7, "Q5_1", 32, 2 + 2 + 4 + 16),
    (8, "Q8_0", 32, 2 + 32),  # f16 d; 32 int8
    # f16 d, f16 s; 32 int8. gguf-py up to 0.19 says 40 bytes, the layout from before d and s were f16.
    (9, "Q8_1", 32, 2 + 2 + 32),
    (10, "Q2_K", 256, 16 + 64 + 2 + 2),  # 16 scale/min nibble pairs; 256 two-bit quants; f16 d, f16 dmin
    (11, "Q3_K", 256, 32 + 64 + 12 + 2),  # high bits; low two bits; 16 six-bit scales; f16 d
    (12, "Q4_K", 256, 2 + 2 + 12 + 128),  # f16 d, f16 dmin; 8 six-bit scales and mins; nibbles
    (13, "Q5_K", 256, 2 + 2 + 12 + 32 + 128),  # as Q4_K plus the fifth bits
    (14, "Q6_K", 256, 128 + 64 + 16 + 2),  # low nibbles; high two bits; 16 int8 scales; f16 d
    (15, "Q8_K", 256, 4 + 256 + 32),  # f32 d; 256 int8; 16 int16 sums
    (16, "IQ2_XXS", 256, 2 + 64),
    (17, "IQ2_XS", 256, 2 + 64 + 8),
    (18, "IQ3_XXS", 256, 2 + 96),
    (19, "IQ1_S", 256, 2 + 32 + 16),
    (20, "IQ4_NL", 32, 2 + 16),  # f16 d; 32 four-bit indexes into a non-linear table
    (21, "IQ3_S", 256, 2 + 64 + 8 + 32 + 4),
    (22, "IQ2_S", 256, 2 + 64 + 8 + 8),
    (23, "IQ4_XS", 256, 2 + 2 + 4 + 128),  # f16 d; high, low bits of 8 six-bit scales; table indexes
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 32 + 16 + 8),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 48 + 4 + 2),  # ternary digits, five then four a byte; f16 d
    (35, "TQ2_0", 256, 64 + 2),  # 256 two-bit ternary quants; f16 d
    (39, "MXFP4", 32, 1 + 16),  # E8M0 shared exponent; 32 E2M1 nibbles
    (40, "NVFP4", 64, 4 + 32),  # 4 UE4M3 scales, one per 16 elements; 64 E2M1 nibbles
    (41, "Q1_0", 128, 2 + 16),
)

BLOCKS: dict[int, tuple[int, int]] = {type_id: (elements, size) for type_id, _, elements, size in _TYPES}
TYPE_NAMES: dict[int, str] = {type_id: name for type_id, name, _, _ in _TYPES}

# ggml's kvalues_iq4nl: the 16 levels of IQ4_NL and IQ4_XS.
_IQ4_LEVELS = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.float32)
# E2M1 (FP4) values doubled, as ggml keeps them (kvalues_mxfp4); the scale decoders halve to make up for it.
# Code 8 (E2M1's negative zero) is a plain 0 there, so it decodes to +0 for a positive scale.
_FP4_DOUBLED = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], np.float32)


def _f16(blocks: Bytes, at: int) -> Floats:
    """The little-endian float16 at byte `at` of each block, as a float32 column (n, 1)."""
    return blocks[:, at:at + 2].copy().view("<f2").astype(np.float32)


def _unpack(packed: Bytes, width: int, run: int) -> Bytes:
    """Split each block's `packed` bytes (n, k) into `width`-bit unsigned values (n, k * 8 // width) in ggml's
    order: within each run of `run` bytes, the lowest `width` bits of every byte come first, then the next
    `width` bits of every byte, and so on. With run=1 the values of one byte are consecutive."""
    count = packed.shape[0]
    shifts = np.arange(0, 8, width, dtype=np.uint8).reshape(1, 1, -1, 1)
    runs = packed.reshape(count, -1, 1, run)
    return ((runs >> shifts) & np.uint8((1 << width) - 1)).reshape(count, -1)


def _trits(packed: Bytes, digits: int, run: int) -> npt.NDArray[np.uint16]:
    """TQ1_0's base-3 digits (0..2), `digits` a byte, in the same run order as `_unpack`.

    A byte holds its digits as a fixed-point fraction of 256 (ggml rounds up when packing): multiplying by
    3^i, modulo 256, drops the first i digits, and the top of the product times 3 is the next digit."""
    count = packed.shape[0]
    powers = (3 ** np.arange(digits)).astype(np.uint8).reshape(1, 1, -1, 1)
    runs = packed.reshape(count, -1, 1, run)
    fraction = runs * powers  # uint8: wrapping is the point
    return ((fraction.astype(np.uint16) * np.uint16(3)) >> np.uint16(8)).reshape(count, -1)


def _f32(blocks: Bytes) -> Floats:
    return blocks.view("<f4")


def _f16_values(blocks: Bytes) -> Floats:
    return blocks.view("<f2").astype(np.float32)


def _bf16(blocks: Bytes) -> Floats:
    return (blocks.view("<u2").astype(np.uint32) << np.uint32(16)).view(np.float32)


def _f64(blocks: Bytes) -> Floats:
    return blocks.view("<f8").astype(np.float32)


def _q4_0(blocks: Bytes) -> Floats:
    quants = _unpack(blocks[:, 2:], 4, 16).astype(np.float32) - np.float32(8)
    return _f16(blocks, 0) * quants


def _q4_1(blocks: Bytes) -> Floats:
    quants = _unpack(blocks[:, 4:], 4, 16).astype(np.float32)
    return _f16(blocks, 0) * quants + _f16(blocks, 2)


def _five_bits(high: Bytes, low: Bytes) -> Floats:
    """Q5_0/Q5_1 quants: bit i of the little-endian uint32 `high` is the fifth bit of element i."""
    return (_unpack(low, 4, 16) | (_unpack(high, 1, 1) << np.uint8(4))).astype(np.float32)


def _q5_0(blocks: Bytes) -> Floats:
    return _f16(blocks, 0) * (_five_bits(blocks[:, 2:6], blocks[:, 6:]) - np.float32(16))


def _q5_1(blocks: Bytes) -> Floats:
    return _f16(blocks, 0) * _five_bits(blocks[:, 4:8], blocks[:, 8:]) + _f16(blocks, 2)


def _q8_0(blocks: Bytes) -> Floats:
    return _f16(blocks, 0) * blocks[:, 2:].view(np.int8).astype(np.float32)


def _q2_k(blocks: Bytes) -> Floats:
    count = blocks.shape[0]
    scales = blocks[:, :16]  # per 16 elements: scale in the low nibble, min in the high one
    quants = _unpack(blocks[:, 16:80], 2, 32).astype(np.float32).reshape(count, 16, 16)
    step = (_f16(blocks, 80) * (scales & np.uint8(0x0F)).astype(np.float32))[:, :, None]
    low = (_f16(blocks, 82) * (scales >> np.uint8(4)).astype(np.float32))[:, :, None]
    return (step * quants - low).reshape(count, -1)


def _q3_k(blocks: Bytes) -> Floats:
    count = blocks.shape[0]
    packed = blocks[:, 96:108]  # 16 six-bit scales: low nibbles in bytes 0-7, high two bits in bytes 8-11
    scales = _unpack(packed[:, :8], 4, 8) | (_unpack(packed[:, 8:], 2, 4) << np.uint8(4))
    step = (_f16(blocks, 108) * (scales.astype(np.float32) - np.float32(32)))[:, :, None]
    # The high bit is stored inverted: a clear bit subtracts 4.
    high_clear = _unpack(blocks[:, :32], 1, 32) == 0
    quants = _unpack(blocks[:, 32:96], 2, 32).astype(np.float32) - np.where(high_clear, np.float32(4), 0)
    return (step * quants.reshape(count, 16, 16)).reshape(count, -1)


def _k_scales_mins(packed: Bytes) -> tuple[Floats, Floats]:
    """Q4_K/Q5_K: eight six-bit scales and eight six-bit mins in 12 bytes. Scales and mins 0-3 are the low
    six bits of bytes 0-3 and 4-7; scales and mins 4-7 take their low four bits from the nibbles of bytes
    8-11 and their top two bits from the top of bytes 0-3 and 4-7."""
    first, second, third = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]
    top, six = np.uint8(6), np.uint8(0x3F)
    scales = np.concatenate([first & six, (third & np.uint8(0x0F)) | ((first >> top) << np.uint8(4))], axis=1)
    mins = np.concatenate([second & six, (third >> np.uint8(4)) | ((second >> top) << np.uint8(4))], axis=1)
    return scales.astype(np.float32), mins.astype(np.float32)


def _k_apply(blocks: Bytes, quants: Bytes) -> Floats:
    """x = d * scale * q - dmin * min over the eight 32-element sub-blocks of a Q4_K/Q5_K block."""
    count = blocks.shape[0]
    scales, mins = _k_scales_mins(blocks[:, 4:16])
    step = (_f16(blocks, 0) * scales)[:, :, None]
    low = (_f16(blocks, 2) * mins)[:, :, None]
    return (step * quants.astype(np.float32).reshape(count, 8, 32) - low).reshape(count, -1)


def _q4_k(blocks: Bytes) -> Floats:
    return _k_apply(blocks, _unpack(blocks[:, 16:144], 4, 32))


def _q5_k(blocks: Bytes) -> Floats:
    return _k_apply(blocks, _unpack(blocks[:, 48:176], 4, 32) | (_unpack(blocks[:, 16:48], 1, 32) << np.uint8(4)))


def _q6_k(blocks: Bytes) -> Floats:
    count = blocks.shape[0]
    quants = _unpack(blocks[:, :128], 4, 64) | (_unpack(blocks[:, 128:192], 2, 32) << np.uint8(4))
    scales = blocks[:, 192:208].view(np.int8).astype(np.float32)
    step = (_f16(blocks, 208) * scales)[:, :, None]
    centred = quants.astype(np.float32) - np.float32(32)
    return (step * centred.reshape(count, 16, 16)).reshape(count, -1)


def _iq4_nl(blocks: Bytes) -> Floats:
    return _f16(blocks, 0) * _IQ4_LEVELS[_unpack(blocks[:, 2:], 4, 16)]


def _iq4_xs(blocks: Bytes) -> Floats:
    count = blocks.shape[0]
    # Eight six-bit scales: low nibbles two a byte, high two bits four a byte (a little-endian uint16).
    scales = _unpack(blocks[:, 4:8], 4, 1) | (_unpack(blocks[:, 2:4], 2, 1) << np.uint8(4))
    step = (_f16(blocks, 0) * (scales.astype(np.float32) - np.float32(32)))[:, :, None]
    levels = _IQ4_LEVELS[_unpack(blocks[:, 8:136], 4, 16)].reshape(count, 8, 32)
    return (step * levels).reshape(count, -1)


def _tq1_0(blocks: Bytes) -> Floats:
    digits = np.concatenate([
        _trits(blocks[:, 0:32], 5, 32),  # elements 0-159
        _trits(blocks[:, 32:48], 5, 16),  # 160-239
        _trits(blocks[:, 48:52], 4, 4),  # 240-255
    ], axis=1)
    return _f16(blocks, 52) * (digits.astype(np.float32) - np.float32(1))


def _tq2_0(blocks: Bytes) -> Floats:
    return _f16(blocks, 64) * (_unpack(blocks[:, :64], 2, 32).astype(np.float32) - np.float32(1))


def _mxfp4(blocks: Bytes) -> Floats:
    # E8M0 byte e is the scale 2^(e - 127); halved (2^(e - 128)) to match the doubled FP4 table. ldexp is
    # exact here, subnormal 2^-128 included. ggml gives e = 255 (E8M0's NaN) no special meaning: 2^127.
    exponent = blocks[:, :1].astype(np.int32) - 128
    scale = np.ldexp(np.ones(exponent.shape, np.float32), exponent)
    return scale * _FP4_DOUBLED[_unpack(blocks[:, 1:], 4, 16)]


def _nvfp4(blocks: Bytes) -> Floats:
    count = blocks.shape[0]
    codes = blocks[:, :4]  # UE4M3: bit 7 unused, four exponent bits (bias 7), three mantissa bits
    exponent = ((codes >> np.uint8(3)) & np.uint8(0x0F)).astype(np.int32)
    mantissa = (codes & np.uint8(0x07)).astype(np.int32)
    # Normal: (8 + m) * 2^(e - 10); subnormal (e = 0): m * 2^-9; then halved for the doubled FP4 table.
    significand = np.where(exponent == 0, mantissa, mantissa + 8).astype(np.float32)
    power = np.where(exponent == 0, -9, exponent - 10) - 1
    scale = np.where(codes == 0x7F, np.float32(0), np.ldexp(significand, power.astype(np.int32)))
    values = _FP4_DOUBLED[_unpack(blocks[:, 4:], 4, 8)].reshape(count, 4, 16)
    return (scale[:, :, None] * values).reshape(count, -1)


_DECODERS: dict[int, Callable[[Bytes], Floats]] = {
    0: _f32,
    1: _f16_values,
    2: _q4_0,
    3: _q4_1,
    6: _q5_0,
    7: _q5_1,
    8: _q8_0,
    10: _q2_k,
    11: _q3_k,
    12: _q4_k,
    13: _q5_k,
    14: _q6_k,
    20: _iq4_nl,
    23: _iq4_xs,
    28: _f64,
    30: _bf16,
    34: _tq1_0,
    35: _tq2_0,
    39: _mxfp4,
    40: _nvfp4,
}

DECODABLE: frozenset[int] = frozenset(_DECODERS)


def _name(ggml_type: int) -> str:
    return f"ggml type {ggml_type} ({TYPE_NAMES.get(ggml_type, 'unknown')})"


def _as_bytes(raw: bytes | memoryview | np.ndarray) -> Bytes:
    if isinstance(raw, np.ndarray):
        if raw.dtype.hasobject:
            raise ValueError("raw holds Python objects, not bytes")
        return np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(raw, dtype=np.uint8)
    except (TypeError, BufferError) as error:
        raise ValueError(f"raw is not a contiguous buffer: {error}") from error


def decode(ggml_type: int, raw: bytes | memoryview | np.ndarray, count: int) -> np.ndarray:
    """float32 values of the first `count` elements held in `raw`, which starts at a block boundary and
    holds at least ceil(count / block_elements) whole blocks. Raises ValueError for an unsupported type or
    too few bytes (never reads past raw)."""
    decoder = _DECODERS.get(ggml_type)
    if decoder is None:
        raise ValueError(f"{_name(ggml_type)} cannot be decoded")
    count = operator.index(count)
    if count < 0:
        raise ValueError(f"negative element count {count}")
    if count == 0:
        return np.zeros(0, np.float32)
    elements, size = BLOCKS[ggml_type]
    block_count = -(-count // elements)
    data = _as_bytes(raw)
    if len(data) < block_count * size:
        raise ValueError(f"{_name(ggml_type)}: {count} elements need {block_count} blocks of {size} bytes, "
                         f"raw holds {len(data)} bytes")
    blocks = data[:block_count * size].reshape(block_count, size)
    with np.errstate(all="ignore"):  # NaN and inf scales are values here, not errors
        values = decoder(blocks)
    return np.array(values.reshape(-1)[:count], dtype=np.float32)  # a copy: never a view of the caller's buffer


def row_bytes(ggml_type: int, row_elements: int) -> int:
    """Bytes of one row of `row_elements` elements of `ggml_type`. ValueError for an unknown type or a row
    that is not a whole number of blocks."""
    geometry = BLOCKS.get(ggml_type)
    if geometry is None:
        raise ValueError(f"{_name(ggml_type)} is not a known ggml type")
    elements, size = geometry
    row_elements = operator.index(row_elements)
    if row_elements < 0 or row_elements % elements:
        raise ValueError(f"{_name(ggml_type)}: a row of {row_elements} elements is not a whole number of "
                         f"{elements}-element blocks")
    return row_elements // elements * size
