"""GGML block decoders: bit for bit what gguf-py's reference dequantiser gives, on blocks gguf-py quantised from
Gaussian weights and on random blocks; block geometry equal to gguf-py's; hostile input refused or passed
through as values, never read past."""

from __future__ import annotations

import numpy as np
import pytest
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize, quantize

from weightwarden.agent.fingerprint.ggml_blocks import BLOCKS, DECODABLE, TYPE_NAMES, decode, row_bytes

T = GGMLQuantizationType
REQUIRED = {T.F32, T.F16, T.BF16, T.F64, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K,
            T.Q5_K, T.Q6_K, T.IQ4_NL, T.IQ4_XS, T.TQ1_0, T.TQ2_0, T.MXFP4}
# gguf-py dequantises these but we do not: their quants index codebooks (grids) we do not carry.
GRID_TYPES = {T.IQ2_XXS, T.IQ2_XS, T.IQ2_S, T.IQ3_XXS, T.IQ3_S, T.IQ1_S, T.IQ1_M}
# The types gguf-py can quantise (F32 and F16 by a cast); test_quantisable_list_is_complete keeps it honest.
QUANTISABLE = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.TQ1_0, T.TQ2_0, T.MXFP4]
# Byte offsets of each type's float16 scales within a block (from ggml's block structs).
F16_SCALES: dict[int, tuple[int, ...]] = {
    T.Q4_0: (0,), T.Q4_1: (0, 2), T.Q5_0: (0,), T.Q5_1: (0, 2), T.Q8_0: (0,), T.Q2_K: (80, 82), T.Q3_K: (108,),
    T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,), T.IQ4_NL: (0,), T.IQ4_XS: (0,), T.TQ1_0: (52,),
    T.TQ2_0: (64,),
}
ROW = 512  # two K-quant super-blocks, sixteen 32-element blocks
DECODABLE_TYPES = sorted(DECODABLE)


def type_id(qtype: int) -> str:
    return TYPE_NAMES[qtype]


def reference(qtype: int, blocks: np.ndarray) -> np.ndarray:
    """gguf-py's values for `blocks` (n, bytes per block); F64, which gguf-py does not read, by a numpy cast."""
    if qtype == T.F64:
        with np.errstate(over="ignore"):  # random doubles beyond float32 become inf, as they should
            return blocks.view("<f8").astype(np.float32).reshape(-1)
    return dequantize(blocks, T(qtype)).reshape(-1)


def assert_same_bits(found: np.ndarray, expected: np.ndarray) -> None:
    """Equal to the last bit: signed zeros count (tensor prints are sign bits), NaN payloads too."""
    assert found.dtype == np.float32 and expected.dtype == np.float32
    assert found.shape == expected.shape
    np.testing.assert_array_equal(found.view(np.uint32), expected.view(np.uint32))


def random_blocks(qtype: int, count: int, seed: int) -> np.ndarray:
    """`count` blocks of random bytes whose scales are finite: float16 scales with any bits but an all-ones
    exponent (zeros, subnormals, negatives and 65504 included), MXFP4 exponents that cannot overflow."""
    size = BLOCKS[qtype][1]
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (count, size), dtype=np.uint8)
    for at in F16_SCALES.get(qtype, ()):
        bits = blocks[:, at:at + 2].copy().view("<u2")
        infinite_or_nan = (bits & 0x7C00) == 0x7C00
        blocks[:, at:at + 2] = np.where(infinite_or_nan, bits & 0xBFFF, bits).view(np.uint8)
    if qtype == T.MXFP4:
        blocks[:, 0] = np.minimum(blocks[:, 0], 250)  # 2^(250 - 128) * 12 < float32 max
    return blocks


@pytest.mark.parametrize("qtype", QUANTISABLE, ids=type_id)
def test_blocks_quantised_by_gguf_py_decode_to_its_values(qtype: int) -> None:
    weights = np.random.default_rng(int(qtype)).standard_normal((8, ROW)).astype(np.float32)
    packed = np.ascontiguousarray(quantize(weights, T(qtype))).view(np.uint8)
    size = row_bytes(qtype, ROW)
    assert packed.shape == (8, size)
    expected = reference(qtype, packed.reshape(-1, BLOCKS[qtype][1]))

    assert_same_bits(decode(qtype, packed.tobytes(), weights.size), expected)
    for row in range(8):  # one row at a time from a memoryview, as the agent reads them
        view = memoryview(packed.tobytes())[row * size:(row + 1) * size]
        assert_same_bits(decode(qtype, view, ROW), expected[row * ROW:(row + 1) * ROW])
    # The decoded values are the weights up to quantisation error: the decoders read weights, not noise.
    # Ternary types keep only the sign of the largest values of a Gaussian block (correlation about 0.7).
    minimum = 0.6 if qtype in (T.TQ1_0, T.TQ2_0) else 0.99
    assert np.corrcoef(decode(qtype, packed.tobytes(), weights.size), weights.reshape(-1))[0, 1] > minimum


@pytest.mark.parametrize("qtype", DECODABLE_TYPES, ids=type_id)
def test_random_blocks_decode_to_gguf_py_values(qtype: int) -> None:
    elements, _ = BLOCKS[qtype]
    blocks = random_blocks(qtype, 64, seed=int(qtype))
    expected = reference(qtype, blocks)

    assert_same_bits(decode(qtype, blocks.tobytes(), 64 * elements), expected)
    # A count that ends inside a block decodes that block and keeps its head; extra bytes are not read.
    partial = 3 * elements - elements // 2 if elements > 1 else 3
    assert_same_bits(decode(qtype, blocks.tobytes(), partial), expected[:partial])
    # An array of any dtype over the same bytes is the same input.
    assert_same_bits(decode(qtype, blocks.view(np.uint16 if blocks.shape[1] % 2 == 0 else np.uint8),
                            64 * elements), expected)


@pytest.mark.parametrize("qtype", DECODABLE_TYPES, ids=type_id)
def test_hostile_scales_pass_through_as_values_without_warnings(qtype: int) -> None:
    # Any bits at all: NaN and infinite float16 scales, MXFP4 exponents that overflow float32. The suite
    # turns warnings into errors, so a RuntimeWarning from numpy would fail here.
    elements, size = BLOCKS[qtype]
    blocks = np.random.default_rng(1000 + int(qtype)).integers(0, 256, (256, size), dtype=np.uint8)
    for at in F16_SCALES.get(qtype, ()):
        blocks[:4, at:at + 2] = np.array([0x7E00, 0x7C00, 0xFC00, 0x7D01], "<u2").view(np.uint8).reshape(4, 2)
    if qtype == T.MXFP4:
        blocks[:2, 0] = 255

    found = decode(qtype, blocks.tobytes(), 256 * elements)

    with np.errstate(all="ignore"):
        expected = reference(qtype, blocks)
    np.testing.assert_array_equal(found, expected)  # NaN where gguf-py has NaN
    if qtype in F16_SCALES:
        assert np.isnan(found[:elements]).all()  # block 0: every float16 scale is NaN
    if qtype == T.MXFP4:
        assert np.isinf(found[:2 * elements]).any()  # 2^127 times an FP4 value of 2 or more


def test_known_values_built_by_hand() -> None:
    # Checks of our own, not through gguf-py, so that a layout both of us got wrong would show.
    q8_0 = np.float16(0.25).tobytes() + np.arange(-16, 16, dtype=np.int8).tobytes()
    np.testing.assert_array_equal(decode(T.Q8_0, q8_0, 32), np.arange(-16, 16) * 0.25)

    # Q4_0: byte j holds element j in its low nibble and element j + 16 in its high one; q - 8.
    q4_0 = np.float16(-2).tobytes() + bytes([0x9F] + [0x88] * 15)
    expected = np.zeros(32, np.float32)
    expected[0], expected[16] = (15 - 8) * -2.0, (9 - 8) * -2.0
    np.testing.assert_array_equal(decode(T.Q4_0, q4_0, 32), expected)

    # MXFP4: exponent byte 127 is a scale of 1; nibble 5 is E2M1 3.0, nibble 13 is -3.0; byte j holds
    # element j in its low nibble and element j + 16 in its high one.
    mxfp4 = bytes([127, 0xD5] + [0] * 15)
    expected = np.zeros(32, np.float32)
    expected[0], expected[16] = 3.0, -3.0
    np.testing.assert_array_equal(decode(T.MXFP4, mxfp4, 32), expected)

    # TQ1_0: a byte packs five base-3 digits d0..d4 as ceil((81 d0 + 27 d1 + 9 d2 + 3 d3 + d4) * 256 / 243);
    # the first 32 bytes give elements 0-159, digit i of byte j being element 32 i + j; value (d - 1) * d.
    digits = [2, 0, 1, 2, 1]
    value = sum(d * 3 ** (4 - i) for i, d in enumerate(digits))
    tq1 = bytearray([(1 * 121 * 256 + 242) // 243] * 52)  # every other byte: all digits 1, values 0
    tq1[0] = (value * 256 + 242) // 243
    tq1 += np.float16(0.5).tobytes()
    found = decode(T.TQ1_0, bytes(tq1), 256)
    assert list(found[[0, 32, 64, 96, 128]]) == [(d - 1) * 0.5 for d in digits]
    assert not np.delete(found, [0, 32, 64, 96, 128]).any()

    # Q3_K: hmask bit i of byte j is the high bit of element 32 i + j, stored inverted (set: q, clear: q - 4);
    # two-bit quants likewise in runs of 32 bytes; scale k (16 elements each) is six bits minus 32: its low
    # nibble from byte k (k < 8) or the high nibble of byte k - 8, its top two bits from byte 8 + k % 4 at
    # bit 2 (k // 4).
    q3_k = bytearray(110)
    q3_k[0] = 0x01  # element 0: high bit set; element 32: clear
    q3_k[32] = 0x03 | 0x01 << 2  # element 0: q = 3; element 32: q = 1
    q3_k[96] = 0x05  # scale 0: low nibble 5
    q3_k[104] = 0x01  # scale 0: top bits 1 -> 5 + 16 - 32 = -11; every other scale: 0 - 32
    q3_k[108:110] = np.float16(1).tobytes()
    found = decode(T.Q3_K, bytes(q3_k), 256)
    assert found[0] == 3 * -11.0
    assert found[32] == (1 - 4) * -32.0
    assert list(found[1:16]) == [-4 * -11.0] * 15  # q = 0, high bit clear
    assert set(found[16:].tolist()) == {-4 * -32.0, (1 - 4) * -32.0}


def test_float_types_by_hand() -> None:
    f64 = np.array([1.5, -0.0, 1e300, -1e-300], "<f8").tobytes()
    found = decode(T.F64, f64, 4)
    assert found[0] == 1.5 and np.signbit(found[1]) and found[2] == np.inf and found[3] == 0 and np.signbit(found[3])
    bf16 = np.array([0x3FC0, 0x8000, 0x7FC1], "<u2").tobytes()  # 1.5, -0.0, a NaN with a payload
    assert decode(T.BF16, bf16, 3).view(np.uint32).tolist() == [0x3FC00000, 0x80000000, 0x7FC10000]


def test_values_are_a_copy_of_raw() -> None:
    raw = bytearray(np.array([1.5, -2.0], "<f4").tobytes())
    found = decode(T.F32, raw, 2)
    raw[:] = bytes(8)

    assert found.tolist() == [1.5, -2.0]
    assert found.flags.writeable and found.flags.c_contiguous


def test_count_zero_is_empty() -> None:
    for qtype in DECODABLE_TYPES:
        found = decode(qtype, b"", 0)
        assert found.dtype == np.float32 and found.shape == (0,)


@pytest.mark.parametrize("qtype", DECODABLE_TYPES, ids=type_id)
def test_too_few_bytes_raise(qtype: int) -> None:
    elements = BLOCKS[qtype][0]
    blocks = random_blocks(qtype, 2, seed=7).tobytes()

    with pytest.raises(ValueError, match="raw holds"):
        decode(qtype, blocks[:-1], 2 * elements)
    with pytest.raises(ValueError, match="raw holds"):
        decode(qtype, blocks, 2 * elements + 1)  # one element into a third block
    with pytest.raises(ValueError, match="raw holds"):
        decode(qtype, blocks, 10**18)  # refused before anything of that size is made
    with pytest.raises(ValueError, match="negative"):
        decode(qtype, blocks, -1)


@pytest.mark.parametrize("qtype", [4, 5, 31, 33, 36, 38, 42, 255, 1 << 40, -1])
def test_unknown_types_raise(qtype: int) -> None:
    with pytest.raises(ValueError, match="cannot be decoded"):
        decode(qtype, bytes(1024), 1)
    with pytest.raises(ValueError, match="not a known ggml type"):
        row_bytes(qtype, 256)


@pytest.mark.parametrize("qtype", sorted(set(BLOCKS) - DECODABLE), ids=type_id)
def test_known_but_undecodable_types_raise(qtype: int) -> None:
    with pytest.raises(ValueError, match="cannot be decoded"):
        decode(qtype, bytes(4096), 1)
    elements, size = BLOCKS[qtype]
    assert row_bytes(qtype, 4 * elements) == 4 * size


def test_row_bytes() -> None:
    assert row_bytes(T.Q4_K, 4096) == 16 * 144
    assert row_bytes(T.Q8_0, 4096) == 128 * 34
    assert row_bytes(T.F16, 3) == 6
    assert row_bytes(T.MXFP4, 0) == 0
    for qtype, elements in [(T.Q4_K, 4095), (T.Q4_K, 128), (T.Q8_0, 33), (T.Q8_0, -32)]:
        with pytest.raises(ValueError, match="whole number"):
            row_bytes(qtype, elements)


def test_bad_raw_raises() -> None:
    with pytest.raises(ValueError, match="objects"):
        decode(T.F32, np.array([object()] * 8), 1)
    strided = memoryview(bytes(64))[::2]
    with pytest.raises(ValueError, match="contiguous"):
        decode(T.Q8_0, strided, 32)


def test_blocks_agree_with_gguf_py_for_every_type_it_knows() -> None:
    assert {int(t) for t in GGMLQuantizationType} <= set(BLOCKS)
    assert {int(t) for t in GGML_QUANT_SIZES} <= set(BLOCKS)
    for qtype, sizes in GGML_QUANT_SIZES.items():
        if qtype == T.Q8_1 and sizes == (32, 40):
            # ggml's block_q8_1 is two float16 (d, s) and 32 int8: 36 bytes (a static_assert in
            # ggml-common.h). gguf-py up to 0.19 still lists the float32 d and s of an older layout.
            assert BLOCKS[qtype] == (32, 36)
            continue
        assert BLOCKS[qtype] == sizes, T(qtype).name
    assert {TYPE_NAMES[int(t)] for t in GGMLQuantizationType} == {t.name for t in GGMLQuantizationType}


def test_decodable_covers_what_is_required_and_only_grid_types_are_left_to_gguf_py() -> None:
    assert REQUIRED <= DECODABLE
    dequantisable = {t for t in GGMLQuantizationType if _gguf_py_dequantises(t)}
    assert dequantisable - DECODABLE == GRID_TYPES


def _gguf_py_dequantises(qtype: GGMLQuantizationType) -> bool:
    size = GGML_QUANT_SIZES[qtype][1]
    try:
        dequantize(np.zeros((1, size), np.uint8), qtype)
    except NotImplementedError:
        return False
    return True


def test_quantisable_list_is_complete() -> None:
    for qtype in DECODABLE - set(QUANTISABLE):
        with pytest.raises(NotImplementedError):
            quantize(np.zeros((1, BLOCKS[qtype][0]), np.float32), T(qtype))
