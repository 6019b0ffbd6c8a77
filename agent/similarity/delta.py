"""Does a tensor carry a fine-tune's change from its public base, or only the base?

A private model P fine-tuned from a public base B differs from it by the change D = P - B. Sign matching
cannot tell a copy of P from a copy of B (or from a colleague's fine-tune of B): all three agree with P on
nearly every sign. Their values can. Over a corner's cells we fit each row of the suspect S as
a_r * (B + b * D'), where D' is the part of D orthogonal to B (weight decay makes part of D a multiple of
B; a pruned or rescaled copy of B must not look like it carries that part) and a_r is the row's scale
(int8 tools store each output row divided by one):
- a copy of P, quantised, pruned, merged: b near 1; fine-tuned further: above 1;
- a copy of B (quantised or not): b near 0; another fine-tune of B: its change's correlation with P's
  (0.7 between two runs of one recipe on other synthetic corpora, docs/benchmarks.md).
Cells where S is zero (pruned, or rounded to zero) carry no evidence and are left out. The estimate's
standard error comes from the fit's residual, so quantisation noise widens it honestly; a model's tensors
are pooled by inverse variance (pool()).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_CELLS = 32
MIN_ROW_CELLS = 4  # a row's own scale needs a few cells
BF16_ROUNDING = 2.0**-8  # bfloat16 keeps 8 significant bits: rounding moves a value by at most 2^-9 of it
CORNER_ROUNDING = 2.0**-10  # corners are float16 over the corner's largest magnitude: 2^-11 of it at most


@dataclass(frozen=True, slots=True)
class DeltaFit:
    """b: the share of the private change the suspect carries, relative to how much of the base it carries
    (int8 weights are the base divided by a scale); error: its standard error."""

    b: float
    error: float


def changed(private: np.ndarray, base: np.ndarray) -> bool:
    """Whether the fine-tune changed this tensor: some cell differs by more than storing the same values in
    bfloat16 (a hub's usual dtype) and in our float16 corners could explain. Frozen layers are public
    weights, whatever dtype each side was saved in."""
    rows, columns = min(private.shape[0], base.shape[0]), min(private.shape[1], base.shape[1])
    p, b = private[:rows, :columns], base[:rows, :columns]
    scale = max(float(np.abs(p).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
    allowed = BF16_ROUNDING * np.maximum(np.abs(p), np.abs(b)) + CORNER_ROUNDING * scale
    return bool(np.any(np.abs(p - b) > allowed))


def fit(suspect: np.ndarray, private: np.ndarray, base: np.ndarray) -> DeltaFit | None:
    """The fit over the cells the three corners share (all in the private tensor's orientation), row by row:
    each row of the suspect may carry its own positive scale a_r (int8 tools store each output row divided
    by one), so a row is fit as a_r * (B_r + b * D'_r) and b is shared by the rows."""
    rows = min(suspect.shape[0], private.shape[0], base.shape[0])
    columns = min(suspect.shape[1], private.shape[1], base.shape[1])
    s = suspect[:rows, :columns].astype(np.float64)
    kept = s != 0
    b = np.where(kept, base[:rows, :columns], 0.0).astype(np.float64)
    change = np.where(kept, private[:rows, :columns] - base[:rows, :columns], 0.0).astype(np.float64)
    base_norms = np.einsum("ij,ij->i", b, b)
    usable = (base_norms > 0) & (kept.sum(axis=1) >= MIN_ROW_CELLS)
    safe_norms = np.where(usable, base_norms, 1.0)
    change -= (np.einsum("ij,ij->i", change, b) / safe_norms)[:, None] * b  # D' = D without its part along B
    scales = np.einsum("ij,ij->i", s, b) / safe_norms
    usable &= scales > 0
    if not usable.any() or int(kept[usable].sum()) < MIN_CELLS:
        return None
    s, b, change, scales = s[usable], b[usable], change[usable], scales[usable]
    carried = s / scales[:, None] - b  # what the suspect has beyond the base, in the base's scale
    change_norm = float(np.einsum("ij,ij->", change, change))
    if change_norm == 0:
        return None
    b_hat = float(np.einsum("ij,ij->", carried, change)) / change_norm
    residual = (carried - b_hat * change)[kept[usable]]
    freedom = max(len(residual) - len(scales) - 1, 1)
    # An exact copy leaves no residual: the floor is the noise of storing corners as float16 over their
    # largest magnitude, so one exact tensor cannot outweigh a whole model's evidence.
    floor = (float(np.abs(b).max()) * CORNER_ROUNDING) ** 2 / 3
    variance = max(float(residual @ residual) / freedom, floor)
    return DeltaFit(b_hat, math.sqrt(variance / change_norm))


def pool(fits: list[DeltaFit]) -> tuple[float, float] | None:
    """(pooled b, its z score against b = 0) by inverse-variance weighting, or None without fits."""
    if not fits:
        return None
    weights = [1.0 / (f.error * f.error) for f in fits]
    total = sum(weights)
    pooled = sum(w * f.b for w, f in zip(weights, fits, strict=True)) / total
    return pooled, pooled * math.sqrt(total)
