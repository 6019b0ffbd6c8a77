"""Q4_K, Q5_K and Q6_K encoders: ggml's reference quantisers, rewritten in vectorised numpy.

gguf-py (0.19, and llama.cpp's master copy of it) can read these types but cannot write them:
`gguf.quants.quantize` raises NotImplementedError for every K-quant. llama-quantize, with no importance
matrix, calls ggml's `quantize_row_q4_K_ref` / `_q5_K_ref` / `_q6_K_ref` (ggml/src/ggml-quants.c), so these
follow those functions step by step: the same per-sub-block scale search (`make_qkx2_quants` for Q4_K/Q5_K,
`make_qx_quants` with rmse_type 1 for Q6_K), the same 6-bit/8-bit scale packing, the same float16 rounding,
the same bit layout, the same float32 operations in the same order (sums added left to right, products
grouped as ggml groups them). Checked against ggml's own `ggml_quantize_chunk` (ggml-org/ggml d99724f, a
plain Release build): the same bytes for all 59,442 blocks tried (normal, heavy-tailed, sparse, positive,
float16-rounded, tiny and large values); and the Q4_K_M/Q5_K_M/Q6_K files llama_gguf.py writes are the
files llama.cpp's llama-quantize writes (test_derived_factory pins both). A build whose compiler fuses
a*b+c into FMA could round a rare boundary value one step the other way.
The output is in gguf-py's byte shape (rows, bytes per row), ready for `GGUFWriter.add_tensor(raw_dtype=...)`,
and `gguf.quants.dequantize` reads it back.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

QK_K = 256
GROUP_MAX_EPS = np.float32(1e-15)

Floats = npt.NDArray[np.float32]
Bytes = npt.NDArray[np.uint8]


def _f32(value: float) -> np.float32:
    return np.float32(value)


def _columns(values: Floats, n: int) -> Floats:
    """Groups of `n` consecutive values as the columns of an (n, groups) array, so that a group's sum can be
    added row after row, vectorised across groups."""
    return np.ascontiguousarray(values.reshape(-1, n).T, dtype=np.float32)


def _sum(columns: Floats) -> Floats:
    """Each column's sum, added top to bottom in float32 as ggml's loops add it (numpy's `sum` may add
    pairwise, which rounds differently)."""
    total: Floats = columns[0].copy()
    for row in columns[1:]:
        total += row
    return total


def _nearest(values: Floats) -> npt.NDArray[np.int32]:
    """ggml's `nearest_int`: round half to even in float32 (the 1.5*2^23 trick)."""
    return np.rint(values).astype(np.int32)


def _fp16_round_trip(values: Floats) -> tuple[npt.NDArray[np.float16], Floats]:
    half = values.astype(np.float16)
    return half, half.astype(np.float32)


def _blocks(rows: Floats) -> Floats:
    if rows.ndim != 2 or rows.shape[1] % QK_K:
        raise ValueError(f"K-quants need rows of a multiple of {QK_K} values, not shape {rows.shape}")
    return np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, QK_K)


def _make_qkx2_quants(x: Floats, weights: Floats, nmax: int, rmin: float, rdelta: float,
                      nstep: int) -> tuple[Floats, Floats, npt.NDArray[np.int32]]:
    """`make_qkx2_quants` over many groups at once (one group a column): returns (scale, -min, levels)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.minimum(x.min(axis=0), _f32(0.0))
        high = x.max(axis=0)
        sum_w = _sum(weights)
        sum_x = _sum(weights * x)
        flat = high == low
        iscale = _f32(nmax) / (high - low)
        scale = _f32(1.0) / iscale
        levels = np.clip(_nearest(iscale * (x - low)), 0, nmax)
        diff = scale * levels.astype(np.float32) + low - x
        best_error = _sum(weights * (diff * diff))
        for step in range(nstep + 1):
            iscale = (_f32(rmin) + _f32(rdelta) * _f32(step) + _f32(nmax)) / (high - low)
            trial = np.clip(_nearest(iscale * (x - low)), 0, nmax)
            trial_f = trial.astype(np.float32)
            weighted = weights * trial_f
            sum_l = _sum(weighted)
            sum_l2 = _sum(weighted * trial_f)
            sum_xl = _sum(weighted * x)
            det = sum_w * sum_l2 - sum_l * sum_l
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / det
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det
            positive_min = this_min > 0
            this_scale = np.where(positive_min, sum_xl / sum_l2, this_scale)
            this_min = np.where(positive_min, _f32(0.0), this_min)
            diff = np.asarray(this_scale * trial_f + this_min - x, dtype=np.float32)
            error = _sum(weights * (diff * diff))
            better = (det > 0) & (error < best_error) & ~flat
            levels = np.where(better, trial, levels)
            best_error = np.where(better, error, best_error)
            scale = np.where(better, this_scale, scale)
            low = np.where(better, this_min, low)
    scale = np.where(flat, _f32(0.0), scale).astype(np.float32)
    levels = np.where(flat, 0, levels)
    return scale, (-low).astype(np.float32), levels


def _make_qx_quants_rmse1(x: Floats, nmax: int) -> tuple[Floats, npt.NDArray[np.int32]]:
    """`make_qx_quants(n, nmax, x, L, rmse_type=1, NULL)` over many groups (one a column): returns
    (scale, levels + nmax)."""
    picked = np.abs(x).argmax(axis=0)  # the first of equal maxima, as ggml's strict `>` keeps
    peak = x[picked, np.arange(x.shape[1])]
    zero = np.abs(peak) < GROUP_MAX_EPS
    peak = np.where(zero, _f32(1.0), peak).astype(np.float32)
    weight = x * x

    def attempt(iscale: Floats) -> tuple[npt.NDArray[np.int32], Floats, Floats]:
        levels = np.clip(_nearest(iscale * x), -nmax, nmax - 1)
        levels_f = levels.astype(np.float32)
        weighted = weight * levels_f
        return levels, _sum(weight * x * levels_f), _sum(weighted * levels_f)

    levels, sumlx, suml2 = attempt(np.asarray(_f32(-nmax) / peak, dtype=np.float32))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(suml2 != 0, sumlx / suml2, _f32(0.0)).astype(np.float32)
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        trial, sumlx, suml2 = attempt(np.asarray(-(_f32(nmax) + _f32(0.1) * _f32(step)) / peak, dtype=np.float32))
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        with np.errstate(divide="ignore", invalid="ignore"):
            new_scale = sumlx / suml2
        levels = np.where(better, trial, levels)
        scale = np.where(better, new_scale, scale)
        best = np.where(better, new_scale * sumlx, best)
    scale = np.where(zero, _f32(0.0), scale).astype(np.float32)
    levels = np.where(zero, 0, levels + nmax)
    return scale, levels


def _pack_scale_min_k4(scale_levels: npt.NDArray[np.int32], min_levels: npt.NDArray[np.int32]) -> Bytes:
    """The 12-byte 6-bit scale/min packing of Q4_K and Q5_K (`get_scale_min_k4` reads it back)."""
    ls = scale_levels.astype(np.uint8)
    lm = min_levels.astype(np.uint8)
    packed = np.zeros((len(ls), 12), dtype=np.uint8)
    packed[:, 0:4] = ls[:, 0:4]
    packed[:, 4:8] = lm[:, 0:4]
    packed[:, 8:12] = (ls[:, 4:8] & 0xF) | ((lm[:, 4:8] & 0xF) << 4)
    packed[:, 0:4] |= (ls[:, 4:8] >> 4) << 6
    packed[:, 4:8] |= (lm[:, 4:8] >> 4) << 6
    return packed


def _k_block_levels(blocks: Floats, nmax: int, rmin: float, rdelta: float, nstep: int
                    ) -> tuple[npt.NDArray[np.float16], npt.NDArray[np.float16], Bytes, npt.NDArray[np.int32]]:
    """The part Q4_K and Q5_K share: sub-block scales and mins, their 6-bit levels, and the final levels."""
    count = len(blocks)
    sub = _columns(blocks, 32)
    av_x = np.sqrt(_sum(sub * sub) / _f32(32))
    weights = av_x + np.abs(sub)
    scales, mins, levels = _make_qkx2_quants(sub, weights, nmax, rmin, rdelta, nstep)
    scales, mins, levels = scales.reshape(count, 8), mins.reshape(count, 8), levels.T.reshape(count, QK_K)
    max_scale = np.maximum(scales.max(axis=1), _f32(0.0))
    max_min = np.maximum(mins.max(axis=1), _f32(0.0))
    with np.errstate(divide="ignore"):
        inv_scale = np.where(max_scale > 0, _f32(63.0) / max_scale, _f32(0.0))
        inv_min = np.where(max_min > 0, _f32(63.0) / max_min, _f32(0.0))
    # `uint8_t ls = nearest_int(...)` wraps before MIN(63, ls)
    ls = np.minimum(_nearest(inv_scale[:, None] * scales) & 0xFF, 63)
    lm = np.minimum(_nearest(inv_min[:, None] * mins) & 0xFF, 63)
    d16, d = _fp16_round_trip((max_scale / _f32(63.0)).astype(np.float32))
    dmin16, dmin = _fp16_round_trip((max_min / _f32(63.0)).astype(np.float32))
    sub_d = (d[:, None] * ls.astype(np.float32)).astype(np.float32)
    sub_m = (dmin[:, None] * lm.astype(np.float32)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        fresh = np.clip(_nearest((blocks.reshape(count, 8, 32) + sub_m[:, :, None]) / sub_d[:, :, None]), 0, nmax)
    keep = (sub_d == 0)[:, :, None]  # `if (!d) continue;` keeps the search's levels
    levels = np.where(keep, levels.reshape(count, 8, 32), fresh).reshape(count, QK_K)
    return d16, dmin16, _pack_scale_min_k4(ls, lm), levels


def quantize_q4_k(rows: Floats) -> Bytes:
    """`quantize_row_q4_K_ref`: blocks of d, dmin (float16), 12 scale bytes, 128 bytes of nibbles."""
    blocks = _blocks(rows)
    d16, dmin16, scales, levels = _k_block_levels(blocks, 15, -1.0, 0.1, 20)
    lv = levels.astype(np.uint8).reshape(-1, 4, 2, 32)  # 4 chunks of 64 = low 32 | high 32
    qs = (lv[:, :, 0, :] | (lv[:, :, 1, :] << 4)).reshape(-1, 128)
    out = np.concatenate([d16.view(np.uint8).reshape(-1, 2), dmin16.view(np.uint8).reshape(-1, 2), scales, qs],
                         axis=1)
    return out.reshape(rows.shape[0], -1)


def quantize_q5_k(rows: Floats) -> Bytes:
    """`quantize_row_q5_K_ref`: d, dmin, 12 scale bytes, 32 bytes of fifth bits, 128 bytes of nibbles."""
    blocks = _blocks(rows)
    d16, dmin16, scales, levels = _k_block_levels(blocks, 31, -0.5, 0.1, 15)
    lv = levels.astype(np.uint8).reshape(-1, 4, 2, 32)
    low, high = lv & 0xF, lv >> 4
    qs = (low[:, :, 0, :] | (low[:, :, 1, :] << 4)).reshape(-1, 128)
    shifts = (2 * np.arange(4, dtype=np.uint8))[None, :, None]
    qh = ((high[:, :, 0, :] << shifts) | (high[:, :, 1, :] << (shifts + 1))).astype(np.uint8)
    qh = np.bitwise_or.reduce(qh, axis=1)
    out = np.concatenate([d16.view(np.uint8).reshape(-1, 2), dmin16.view(np.uint8).reshape(-1, 2), scales, qh, qs],
                         axis=1)
    return out.reshape(rows.shape[0], -1)


def quantize_q6_k(rows: Floats) -> Bytes:
    """`quantize_row_q6_K_ref`: 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 scales, d."""
    blocks = _blocks(rows)
    count = len(blocks)
    scales, levels = _make_qx_quants_rmse1(_columns(blocks, 16), 32)
    scales, levels = scales.reshape(count, 16), levels.T.reshape(count, QK_K)
    picked = np.abs(scales).argmax(axis=1)
    max_scale = scales[np.arange(count), picked]
    empty = np.abs(max_scale) < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(empty, _f32(0.0), _f32(-128.0) / np.where(empty, _f32(1.0), max_scale)).astype(np.float32)
        d16, d = _fp16_round_trip(np.where(empty, _f32(0.0), _f32(1.0) / iscale).astype(np.float32))
    small = np.minimum(127, _nearest(iscale[:, None] * scales))
    sub_d = (d[:, None] * small.astype(np.float32)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        fresh = np.clip(_nearest(blocks.reshape(count, 16, 16) / sub_d[:, :, None]), -32, 31) + 32
    keep = (sub_d == 0)[:, :, None]
    levels = np.where(keep, levels.reshape(count, 16, 16), fresh).reshape(count, QK_K)
    lv = levels.astype(np.uint8).reshape(count, 2, 4, 32)  # halves of 128, quarters of 32
    low, high = lv & 0xF, lv >> 4
    ql = np.concatenate([low[:, :, 0, :] | (low[:, :, 2, :] << 4), low[:, :, 1, :] | (low[:, :, 3, :] << 4)],
                        axis=2).reshape(count, 128)
    qh = (high[:, :, 0, :] | (high[:, :, 1, :] << 2) | (high[:, :, 2, :] << 4) | (high[:, :, 3, :] << 6))
    out = np.concatenate([ql, qh.reshape(count, 64), small.astype(np.int8).view(np.uint8),
                          d16.view(np.uint8).reshape(-1, 2)], axis=1)
    out[empty] = 0  # `memset(&y[i], 0, sizeof(block_q6_K))`
    return out.reshape(rows.shape[0], -1)
