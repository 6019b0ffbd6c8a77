"""Q4_K, Q5_K and Q6_K quantisers that write the bytes llama.cpp's `llama-quantize` writes, in numpy.

Why: gguf-py (0.19) reads K-quants (`gguf.quants.dequantize`) but cannot write them (`quantize` raises
NotImplementedError), and CI can neither download nor build llama.cpp. Tests that need a model "quantised
for llama.cpp" therefore quantise with this module.

Source followed: ggml/src/ggml-quants.c of ggml-org/llama.cpp at commit
82bb48500a9a6b3374da2cf5811695369278e4d3 (2026-08-07), functions `quantize_row_q4_K_ref`,
`quantize_row_q5_K_ref`, `quantize_row_q6_K_ref` and their helpers `make_qkx2_quants`, `make_qx_quants`
(rmse_type 1), `nearest_int`, `get_scale_min_k4` and `GROUP_MAX_EPS`; rewritten here from their logic
(llama.cpp is MIT-licensed), vectorised over all blocks at once.

Which path llama-quantize takes: with no `--imatrix`, src/llama-quant.cpp calls `ggml_quantize_chunk`
(ggml/src/ggml.c) with imatrix NULL, which calls `quantize_q4_K` / `quantize_q5_K` / `quantize_q6_K`;
each of those, when `quant_weights` is NULL, runs `quantize_row_q*_K_ref` over the whole chunk (checked in
the source at that commit). Every 256-value block is quantised on its own, so the thread count and chunking
do not change the bytes. With an imatrix llama.cpp uses other code (`quantize_row_q*_K_impl`), not this.

Faithfulness rules kept here:
- float32 everywhere, one rounding per C operation, in the C evaluation order (`w*l*x` is `(w*l)*x`);
- sums are added first to last as the C loops add them (never numpy's pairwise `sum`);
- `nearest_int` is the C bit trick itself (add 1.5*2^23, keep the low mantissa bits), not `np.rint`, so
  out-of-range values wrap the way they do in C;
- `make_qkx2_quants` moves its `min` when a search step wins, and later steps use the moved min;
- d and dmin go through float16 with round-to-nearest-even (GGML_FP32_TO_FP16 = numpy's float16 cast);
- a sub-block whose quantised scale is 0 keeps the levels of its scale search (`if (!d) continue`).
Checked byte for byte against the real llama-quantize (tests/data/kquants/README.md). ggml-base is built
without FMA on x86-64; a build whose compiler fuses a*b+c (e.g. some aarch64 builds) can round a rare
boundary value differently.

Block layouts (little-endian): Q4_K 144 bytes = d, dmin (fp16), 12 scale bytes, 128 nibble bytes;
Q5_K 176 bytes = d, dmin, 12 scale bytes, 32 high-bit bytes, 128 nibble bytes; Q6_K 210 bytes = 128 low
nibble bytes, 64 high-pair bytes, 16 int8 scales, d. The output has gguf-py's byte shape
(rows, bytes per row), ready for `GGUFWriter.add_tensor(..., raw_dtype=GGMLQuantizationType.Q4_K)`.

Which type the default mixes give each tensor (src/llama-quant.cpp `llama_tensor_get_type` and
`llama_tensor_get_type_impl`, same commit), for the llama architecture, no imatrix, no overrides, not MoE,
every row a multiple of 256 values, Q4_K_M | Q5_K_M:
- 1-D tensors and names containing `_norm.weight` are not quantised: they stay as they are (F32); a
  matrix of one row is 1-D to ggml (`ggml_n_dims` ignores trailing 1s), so it is not quantised either;
- output.weight: Q6_K | Q6_K (and token_embd.weight too when the model has no output.weight: tied);
- token_embd.weight: Q4_K | Q5_K;
- blk.N.attn_v.weight (and a fused attn_qkv): Q6_K if use_more_bits(i, n) else Q4_K | Q5_K, where i counts
  the attn_v tensors already seen and n is their count; the loader sorts tensors by block number, then
  name (`weight_name_comparer`: blk.2 before blk.10), so i is the layer and n the layer count;
  a llama "70B" (80 layers, grouped-query attention) raises the Q4_K_M ones that are not Q6_K to Q5_K;
- blk.N.ffn_down.weight: Q6_K if use_more_bits(i, block_count) else Q4_K | Q5_K, i counted likewise;
- attn_q, attn_k, attn_output, ffn_gate, ffn_up: Q4_K | Q5_K;
- use_more_bits(i, n) = i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2 (integer division): for 8 layers that
  is layers 0, 3, 6 and 7; for 32 layers 0-3, 6, 9, ..., 27 and 28-31.
- a row length that is not a multiple of 256 falls back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0;
  output.weight -> Q8_0): not modelled by `km_mix_type`.
`--pure` gives every quantisable tensor the file type's base type (Q4_K_M -> Q4_K, Q5_K_M -> Q5_K).
Q6_K (pure or not) gives every quantisable tensor Q6_K. These rules were checked against llama-quantize's
choices for a 12-block llama (tied and untied) and an 80-block "70B" one (tests/data/kquants).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

QK_K = 256
BLOCK_BYTES = {"Q4_K": 144, "Q5_K": 176, "Q6_K": 210}

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int32]
Bytes = npt.NDArray[np.uint8]

_F32 = np.float32
_GROUP_MAX_EPS = _F32(1e-15)
_ROUNDING_BIAS = _F32(12582912.0)  # 1.5 * 2**23: adding it leaves the rounded integer in the low mantissa bits


def _nearest_int(values: Floats) -> Ints:
    """ggml's `nearest_int`, bit for bit (round half to even inside +-2^22; wraps like C outside)."""
    biased = (values + _ROUNDING_BIAS).astype(np.float32, copy=False)
    return (biased.view(np.int32) & 0x007FFFFF) - 0x00400000


def _ordered_sum(values: npt.NDArray[np.floating[Any]]) -> Floats:
    """Sum over axis 0 (the positions of a group), first to last, one float32 rounding per addition.

    The C loops add in that order; numpy's `sum` adds pairwise and `cumsum` over short rows is slow, so this
    is a loop over the (16 or 32) positions, each step vectorised over every group of the input.
    """
    total: Floats = values[0].astype(np.float32)  # float32 already: a copy to add into
    for row in values[1:]:
        total += row
    return total


def _to_fp16(values: Floats) -> npt.NDArray[np.float16]:
    """GGML_FP32_TO_FP16: round to nearest even, subnormals kept, overflow to infinity."""
    return values.astype("<f2")


def _blocks(rows: npt.ArrayLike) -> tuple[Floats, tuple[int, ...]]:
    data = np.ascontiguousarray(rows, dtype=np.float32)
    if data.ndim == 0 or data.shape[-1] % QK_K:
        raise ValueError(f"K-quants need rows of a multiple of {QK_K} values, not shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("K-quants need finite values (llama-quantize refuses NaN and infinity too)")
    return data.reshape(-1, QK_K), (*data.shape[:-1], data.shape[-1] // QK_K)


def _make_qkx2_quants(x: Floats, weights: Floats, nmax: int, rmin: float, rdelta: float,
                      nstep: int) -> tuple[Floats, Floats, Ints]:
    """`make_qkx2_quants` for many groups at once, one group a column: (scale, the_min, levels).

    The weighted least-squares fit of x ~ scale*level + min over nstep+1 candidate inverse scales; a
    candidate is kept only if its weighted squared error is strictly smaller than the best so far.
    """
    fmax = _F32(nmax)
    high = x.max(axis=0)
    low = x.min(axis=0)
    low = np.where(low > 0, _F32(0), low)  # the min is never above 0
    flat = high == low
    sum_w = _ordered_sum(weights)
    sum_x = _ordered_sum(weights * x)

    iscale = fmax / (high - low)
    scale = _F32(1) / iscale
    levels = np.clip(_nearest_int(iscale * (x - low)), 0, nmax)
    diff = (scale * levels.astype(np.float32) + low) - x
    best_error = _ordered_sum(weights * (diff * diff))

    for step in range(nstep + 1):
        numerator = (_F32(rmin) + _F32(rdelta) * _F32(step)) + fmax
        iscale = numerator / (high - low)  # `low` may have moved at an earlier step, as in C
        trial = np.clip(_nearest_int(iscale * (x - low)), 0, nmax)
        trial_f = trial.astype(np.float32)
        wl = weights * trial_f
        sum_l = _ordered_sum(wl)
        sum_l2 = _ordered_sum(wl * trial_f)
        sum_xl = _ordered_sum(wl * x)
        det = sum_w * sum_l2 - sum_l * sum_l
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / det
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det
        positive_min = this_min > 0
        # np.where keeps float32 here; the casts (no copies) only tell the type checker so
        this_scale = np.where(positive_min, sum_xl / sum_l2, this_scale).astype(np.float32, copy=False)
        this_min = np.where(positive_min, _F32(0), this_min).astype(np.float32, copy=False)
        residual = (this_scale * trial_f + this_min) - x
        error = _ordered_sum(weights * (residual * residual))
        better = (det > 0) & (error < best_error)
        if better.any():
            levels = np.where(better, trial, levels)
            best_error = np.where(better, error, best_error)
            scale = np.where(better, this_scale, scale)
            low = np.where(better, this_min, low)

    levels = np.where(flat, 0, levels)
    scale = np.where(flat, _F32(0), scale)
    return scale, -low, levels


def _make_qx_quants_rmse1(x: Floats, nmax: int) -> tuple[Floats, Ints]:
    """`make_qx_quants(n, nmax, x, L, rmse_type=1, NULL)` for many groups, one a column: (scale, levels).

    Levels are stored with the +nmax offset, as in C; an all-zero group gives scale 0 and levels 0.
    """
    fmax = _F32(nmax)
    peak = x[np.abs(x).argmax(axis=0), np.arange(x.shape[1])]  # the first value of largest magnitude, sign kept
    empty = np.abs(peak) < _GROUP_MAX_EPS
    weights = x * x
    weighted_x = weights * x

    def fit(inverse_scale: Floats) -> tuple[Ints, Floats, Floats]:
        level = np.clip(_nearest_int(inverse_scale * x), -nmax, nmax - 1)
        level_f = level.astype(np.float32)
        return level, _ordered_sum(weighted_x * level_f), _ordered_sum((weights * level_f) * level_f)

    level, sumlx, suml2 = fit(-fmax / peak)
    levels = level + nmax
    scale = np.where(suml2 != 0, sumlx / suml2, _F32(0))
    best = scale * sumlx
    for step in (*range(-9, 0), *range(1, 10)):
        level, sumlx, suml2 = fit(-(fmax + _F32(0.1) * _F32(step)) / peak)
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        if better.any():
            levels = np.where(better, level + nmax, levels)
            scale = np.where(better, sumlx / suml2, scale)
            best = np.where(better, scale * sumlx, best)

    return np.where(empty, _F32(0), scale), np.where(empty, 0, levels)


def _as_bytes(values: npt.NDArray[np.generic], count: int) -> Bytes:
    return np.ascontiguousarray(values).view(np.uint8).reshape(count, -1)


def _scale_min_block(blocks: Floats, nmax: int, rmin: float, rdelta: float,
                     nstep: int) -> tuple[Bytes, Ints]:
    """The part Q4_K and Q5_K share: the header bytes (d, dmin, 12 scale bytes) and the final levels."""
    count = len(blocks)
    groups = np.ascontiguousarray(blocks.reshape(count * 8, 32).T)  # position-major: one group a column
    av_x = np.sqrt(_ordered_sum(groups * groups) / _F32(32))
    weights = av_x + np.abs(groups)
    scales, mins, search_levels = _make_qkx2_quants(groups, weights, nmax, rmin, rdelta, nstep)
    scales, mins = scales.reshape(count, 8), mins.reshape(count, 8)

    max_scale = np.maximum(scales.max(axis=1), _F32(0))
    max_min = np.maximum(mins.max(axis=1), _F32(0))
    inv_scale = np.where(max_scale > 0, _F32(63) / max_scale, _F32(0))
    inv_min = np.where(max_min > 0, _F32(63) / max_min, _F32(0))
    ls = np.minimum(_nearest_int(inv_scale[:, None] * scales) & 0xFF, 63)  # the C stores into a uint8_t
    lm = np.minimum(_nearest_int(inv_min[:, None] * mins) & 0xFF, 63)

    d16 = _to_fp16(max_scale / _F32(63))
    dmin16 = _to_fp16(max_min / _F32(63))
    sub_d = d16.astype(np.float32)[:, None] * ls.astype(np.float32)
    sub_m = dmin16.astype(np.float32)[:, None] * lm.astype(np.float32)
    x = blocks.reshape(count, 8, 32)
    fresh = np.clip(_nearest_int((x + sub_m[:, :, None]) / sub_d[:, :, None]), 0, nmax)
    levels = np.where((sub_d == 0)[:, :, None], search_levels.T.reshape(count, 8, 32), fresh)

    # get_scale_min_k4's packing: 6-bit scales and mins of sub-blocks 0-3 in bytes 0-7, the low nibbles
    # of sub-blocks 4-7 in bytes 8-11 and their top two bits in the top bits of bytes 0-7.
    packed = np.empty((count, 12), dtype=np.uint8)
    packed[:, 0:4] = ls[:, :4] | ((ls[:, 4:] >> 4) << 6)
    packed[:, 4:8] = lm[:, :4] | ((lm[:, 4:] >> 4) << 6)
    packed[:, 8:12] = (ls[:, 4:] & 0xF) | ((lm[:, 4:] & 0xF) << 4)
    header = np.concatenate([_as_bytes(d16, count), _as_bytes(dmin16, count), packed], axis=1)
    return header, levels.reshape(count, QK_K)


def _nibbles(levels: Ints) -> Bytes:
    """Per 64 values: byte l holds value l in its low nibble and value l+32 in its high nibble."""
    pairs = (levels & 0xF).astype(np.uint8).reshape(len(levels), 4, 2, 32)
    return (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).astype(np.uint8, copy=False).reshape(len(levels), 128)


def _quiet(quantiser: Callable[[npt.ArrayLike], Bytes]) -> Callable[[npt.ArrayLike], Bytes]:
    """Run without numpy's floating-point warnings: the C divides by zero on purpose in skipped sub-blocks."""
    @functools.wraps(quantiser)
    def run(rows: npt.ArrayLike) -> Bytes:
        with np.errstate(all="ignore"):
            return quantiser(rows)
    return run


@_quiet
def quantize_q4_k(rows: npt.ArrayLike) -> Bytes:
    """`quantize_row_q4_K_ref`: rows (..., n), n a multiple of 256 -> uint8 (..., n/256*144)."""
    blocks, shape = _blocks(rows)
    header, levels = _scale_min_block(blocks, 15, -1.0, 0.1, 20)
    out = np.concatenate([header, _nibbles(levels)], axis=1)
    return out.reshape(*shape[:-1], shape[-1] * BLOCK_BYTES["Q4_K"])


@_quiet
def quantize_q5_k(rows: npt.ArrayLike) -> Bytes:
    """`quantize_row_q5_K_ref`: rows (..., n), n a multiple of 256 -> uint8 (..., n/256*176)."""
    blocks, shape = _blocks(rows)
    header, levels = _scale_min_block(blocks, 31, -0.5, 0.1, 15)
    fifth = (levels >> 4).astype(np.uint8).reshape(len(levels), 4, 2, 32)
    # qh byte j: bit 2c is the fifth bit of value 64c+j, bit 2c+1 that of value 64c+32+j
    shifts = (2 * np.arange(4, dtype=np.uint8))[None, :, None]
    qh = np.bitwise_or.reduce((fifth[:, :, 0] << shifts) | (fifth[:, :, 1] << (shifts + 1)), axis=1)
    out = np.concatenate([header, qh.astype(np.uint8), _nibbles(levels)], axis=1)
    return out.reshape(*shape[:-1], shape[-1] * BLOCK_BYTES["Q5_K"])


@_quiet
def quantize_q6_k(rows: npt.ArrayLike) -> Bytes:
    """`quantize_row_q6_K_ref`: rows (..., n), n a multiple of 256 -> uint8 (..., n/256*210)."""
    blocks, shape = _blocks(rows)
    count = len(blocks)
    scales, search_levels = _make_qx_quants_rmse1(np.ascontiguousarray(blocks.reshape(count * 16, 16).T), 32)
    scales = scales.reshape(count, 16)
    max_scale = scales[np.arange(count), np.abs(scales).argmax(axis=1)]
    empty = np.abs(max_scale) < _GROUP_MAX_EPS  # whole block written as zeros

    iscale = _F32(-128) / max_scale
    d16 = _to_fp16(_F32(1) / iscale)
    small = (np.minimum(_nearest_int(iscale[:, None] * scales), 127) & 0xFF).astype(np.uint8)
    sub_d = d16.astype(np.float32)[:, None] * small.view(np.int8).astype(np.float32)
    x = blocks.reshape(count, 16, 16)
    fresh = np.clip(_nearest_int(x / sub_d[:, :, None]), -32, 31) + 32
    levels = np.where((sub_d == 0)[:, :, None], search_levels.T.reshape(count, 16, 16), fresh)

    # Per 128 values (4 quarters of 32): ql holds quarters 0|2 then 1|3 as nibble pairs, qh the top two
    # bits of all four quarters, two bits each.
    quarters = levels.astype(np.uint8).reshape(count, 2, 4, 32)
    low, high = quarters & 0xF, quarters >> 4
    ql = np.concatenate([low[:, :, 0] | (low[:, :, 2] << 4), low[:, :, 1] | (low[:, :, 3] << 4)], axis=2)
    qh = high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)
    out = np.concatenate([ql.reshape(count, 128), qh.reshape(count, 64), small, _as_bytes(d16, count)], axis=1)
    out[empty] = 0
    return out.reshape(*shape[:-1], shape[-1] * BLOCK_BYTES["Q6_K"])


QUANTISERS: dict[str, Callable[[npt.ArrayLike], Bytes]] = {
    "Q4_K": quantize_q4_k,
    "Q5_K": quantize_q5_k,
    "Q6_K": quantize_q6_k,
}


def quantize(rows: npt.ArrayLike, type_name: str) -> Bytes:
    """Quantise rows to "Q4_K", "Q5_K" or "Q6_K" (the ggml type names), as llama-quantize does."""
    try:
        quantiser = QUANTISERS[type_name]
    except KeyError:
        raise ValueError(f"no K-quant quantiser for {type_name!r}; known: {sorted(QUANTISERS)}") from None
    return quantiser(rows)


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama-quant.cpp's `use_more_bits` (C integer division; the modulo is reached only when i >= n/8)."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


MixVariant = Literal["Q4_K_M", "Q5_K_M"]
_BASE_TYPE = {"Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K"}


def km_mix_type(tensor_name: str, layer: int, n_layers: int, variant: MixVariant, *,
                tied_embeddings: bool = False, llama_70b: bool = False) -> str:
    """The type llama-quantize's default Q4_K_M / Q5_K_M mix gives a llama-architecture GGUF tensor.

    `layer` is the tensor's block number (ignored outside blk.N), `n_layers` the model's block count.
    `tied_embeddings`: the file has no output.weight (token_embd.weight then gets output's Q6_K);
    `llama_70b`: llama.cpp typed the model LLM_TYPE_70B (80 blocks and fewer KV heads than heads).
    Returns a ggml type name; "F32" for the tensors llama-quantize leaves alone (norms, 1-D tensors),
    assuming they were F32 in the input. Rules and source: this module's docstring.
    """
    if variant not in _BASE_TYPE:
        raise ValueError(f"variant must be Q4_K_M or Q5_K_M, not {variant!r}")
    base = _BASE_TYPE[variant]
    if not tensor_name.endswith("weight") or "_norm.weight" in tensor_name or tensor_name == "rope_freqs.weight":
        return "F32"
    if tensor_name == "output.weight" or (tied_embeddings and tensor_name == "token_embd.weight"):
        return "Q6_K"
    if tensor_name == "token_embd.weight":
        return base
    if "attn_v.weight" in tensor_name or "attn_qkv.weight" in tensor_name:
        if use_more_bits(layer, n_layers):
            return "Q6_K"
        return "Q5_K" if llama_70b and base == "Q4_K" else base
    if "ffn_down" in tensor_name:
        return "Q6_K" if use_more_bits(layer, n_layers) else base
    return base
