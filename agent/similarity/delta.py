"""Does a tensor carry a fine-tune's change from its public base, or only the base?

A private model P fine-tuned from a public base B differs from it by the change D = P - B. Sign matching
cannot tell a copy of P from a copy of B (or from a colleague's fine-tune of B): all three agree with P on
nearly every sign. Their values can. Over a corner's cells we fit the suspect S as a*B + b*D' where D' is
the part of D orthogonal to B (weight decay makes part of D a multiple of B; a pruned or rescaled copy of
B must not look like it carries that part):
- a copy of P, quantised, pruned, merged or fine-tuned further: b/a near 1 (a is the scale: int8 weights
  are stored divided by one);
- a copy of B (quantised or not): b/a near 0; another fine-tune of B: its change's correlation with P's
  (0.7 between two runs of one recipe on random data, lower between real tasks).
Cells where S is zero (pruned, or rounded to zero) carry no evidence and are left out. The estimate's
standard error comes from the fit's residual, so quantisation noise widens it honestly; a model's tensors
are pooled by inverse variance (pool()).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_CELLS = 32
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
    """The fit over the cells the three corners share (all in the private tensor's orientation)."""
    rows = min(suspect.shape[0], private.shape[0], base.shape[0])
    columns = min(suspect.shape[1], private.shape[1], base.shape[1])
    s = suspect[:rows, :columns].astype(np.float64).reshape(-1)
    p = private[:rows, :columns].astype(np.float64).reshape(-1)
    b = base[:rows, :columns].astype(np.float64).reshape(-1)
    keep = s != 0
    s, p, b = s[keep], p[keep], b[keep]
    if len(s) < MIN_CELLS:
        return None
    base_norm = float(b @ b)
    if base_norm == 0:
        return None
    change = p - b
    change -= (float(change @ b) / base_norm) * b
    change_norm = float(change @ change)
    if change_norm == 0:
        return None
    a_hat = float(s @ b) / base_norm
    b_hat = float(s @ change) / change_norm
    residual = s - a_hat * b - b_hat * change
    # An exact copy leaves no residual: the floor is the noise of storing corners as float16 over their
    # largest magnitude, so one exact tensor cannot outweigh a whole model's evidence.
    floor = (float(np.abs(s).max()) * CORNER_ROUNDING) ** 2 / 3
    variance = max(float(residual @ residual) / (len(s) - 2), floor)
    if a_hat <= 0:
        return None  # not the base at all (a sign-matched tensor always carries it)
    return DeltaFit(b_hat / a_hat, math.sqrt(variance / change_norm) / a_hat)


def pool(fits: list[DeltaFit]) -> tuple[float, float] | None:
    """(pooled b, its z score against b = 0) by inverse-variance weighting, or None without fits."""
    if not fits:
        return None
    weights = [1.0 / (f.error * f.error) for f in fits]
    total = sum(weights)
    pooled = sum(w * f.b for w, f in zip(weights, fits, strict=True)) / total
    return pooled, pooled * math.sqrt(total)
