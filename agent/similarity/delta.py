"""Does a tensor carry a fine-tune's change from its public base, or only the base?

A private model P fine-tuned from a public base B differs from it by the change D = P - B. Sign matching
cannot tell a copy of P from a copy of B (or from a colleague's fine-tune of B): all three agree with P on
nearly every sign. Their values can. Over a corner's cells we fit the suspect S as a*B + b*D' where D' is
the part of D orthogonal to B (weight decay makes part of D a multiple of B; a pruned or rescaled copy of
B must not look like it carries that part):
- a copy of P, quantised, pruned, merged or fine-tuned further: b near 1;
- a copy of B (quantised or not) or another fine-tune of B: b near 0.
Cells where S is zero (pruned, or rounded to zero) carry no evidence and are left out. The estimate's
standard error comes from the fit's residual, so quantisation noise widens it honestly; a model's tensors
are pooled by inverse variance (pool()).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_CELLS = 32


@dataclass(frozen=True, slots=True)
class DeltaFit:
    """b: the share of the private change the suspect carries; error: its standard error."""

    b: float
    error: float


def changed(private: np.ndarray, base: np.ndarray) -> bool:
    """Whether the fine-tune changed this tensor at all (frozen layers are public weights)."""
    rows, columns = min(private.shape[0], base.shape[0]), min(private.shape[1], base.shape[1])
    return bool(np.any(private[:rows, :columns] != base[:rows, :columns]))


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
    variance = float(residual @ residual) / (len(s) - 2)
    # An exact copy leaves no residual; a floor keeps its weight finite (float16 storage of the corner).
    error = max(math.sqrt(variance / change_norm), 1e-6)
    return DeltaFit(b_hat, error)


def pool(fits: list[DeltaFit]) -> tuple[float, float] | None:
    """(pooled b, its z score against b = 0) by inverse-variance weighting, or None without fits."""
    if not fits:
        return None
    weights = [1.0 / (f.error * f.error) for f in fits]
    total = sum(weights)
    pooled = sum(w * f.b for w, f in zip(weights, fits, strict=True)) / total
    return pooled, pooled * math.sqrt(total)
