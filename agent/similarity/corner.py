"""One tensor's corner, ready to compare: its values, its sign and non-zero bits, its MinHash bands.

Two tensors match when the signs of their corner values agree where both are non-zero. Why signs of the
non-zero values: rounding to any quantisation grid keeps a value's sign or sends it to zero (symmetric
formats: Q8_0, Q4_0, int8), or flips only values near zero (formats with a block minimum: Q4_K, Q5_K);
magnitude pruning sets the small values to zero and leaves the rest untouched; a short fine-tune or a
merged adapter moves values by much less than their typical size. Positive per-row or per-column scales
(int8 scales, AWQ) change no sign at all. Unrelated tensors agree on half their signs: over a 32x32 corner
that is 0.5 +- 0.016, so the match threshold of 0.8 sits 19 standard deviations away.

Cells are laid on a 32x32 canvas (cell = row * 32 + column), so corners of any size and a transposed
corner compare bit for bit as Python integers (about a microsecond per comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weightwarden.agent.fingerprint.blocks import SIDE, decode_block

MATCH_AGREEMENT = 0.8
MIN_COMMON = 64  # fewer shared non-zero cells than this decide nothing
MIN_INFORMATIVE = 64
MIN_MINORITY_SHARE = 1 / 8
# MinHash over the set {(cell, sign) of each row's largest values}, one-permutation style: each pair is
# hashed once and falls into one of BANDS * ROWS_PER_BAND bins; a bin's minimum is its MinHash value. A fixed
# count of largest values (a quarter of each row, ties included) is what pruning to 50% leaves in place.
BANDS, ROWS_PER_BAND = 12, 5
_BINS = BANDS * ROWS_PER_BAND
_EMPTY = np.uint64(np.iinfo(np.uint64).max)


def _splitmix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over uint64 values: a fixed, version-independent hash."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


_KEY_HASH = _splitmix(np.arange(2 * SIDE * SIDE, dtype=np.uint64))  # key = cell * 2 + sign
_BAND_SALT = (np.arange(BANDS, dtype=np.uint64) + np.uint64(1)) << np.uint64(40)


@dataclass(frozen=True, slots=True)
class Corner:
    """`block` is the stored form (fingerprint/blocks.py), decoded on demand: a reference costs its sign
    and non-zero bits, not a float array."""

    block: bytes
    rows: int
    columns: int
    signs: int  # bit cell set: value < 0
    nonzero: int  # bit cell set: value != 0
    transpose: bool = False  # `values` is the stored block transposed

    @property
    def values(self) -> np.ndarray:
        stored = decode_block(self.block)
        if stored is None:  # from_block checked it
            raise ValueError("not a corner block")
        return np.ascontiguousarray(stored.T) if self.transpose else stored

    @property
    def informative(self) -> bool:
        """Enough non-zero values with enough of each sign to tell tensors apart (not norms, not masks)."""
        nonzero, negative = self.nonzero.bit_count(), self.signs.bit_count()
        return nonzero >= MIN_INFORMATIVE and min(negative, nonzero - negative) >= nonzero * MIN_MINORITY_SHARE

    def transposed(self) -> Corner:
        return _corner(self.block, self.values.T, not self.transpose)


def from_block(block: bytes) -> Corner | None:
    values = decode_block(block)
    return _corner(block, values, False) if values is not None else None


@dataclass(frozen=True, slots=True)
class Prepared:
    """Informative corners of many blocks with their canvases, ready for bands(): `sources[i]` is the
    index of the block corners[i] came from; with both orientations, each block's transposed corner follows
    its own (transposed corners are what a transposed copy of the tensor shows)."""

    corners: list[Corner]
    canvases: np.ndarray  # float32, one 1,024-cell row per corner
    sources: list[int]


def prepare(blocks: list[bytes], *, both: bool = False) -> Prepared:
    """Decode each block once; skip the ones that are not corners or carry no information."""
    found: list[Corner] = []
    canvases: list[np.ndarray] = []
    sources: list[int] = []
    for index, block in enumerate(blocks):
        values = decode_block(block) if block else None
        if values is None:
            continue
        canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
        canvas[:values.shape[0], :values.shape[1]] = values
        corner = _from_canvas(block, canvas, values.shape, False)
        if not corner.informative:
            continue
        found.append(corner)
        canvases.append(canvas.reshape(-1))
        sources.append(index)
        if both:
            flipped = np.ascontiguousarray(canvas.T)
            found.append(_from_canvas(block, flipped, values.shape[::-1], True))
            canvases.append(flipped.reshape(-1))
            sources.append(index)
    stacked = np.stack(canvases) if canvases else np.zeros((0, SIDE * SIDE), dtype=np.float32)
    return Prepared(found, stacked, sources)


def _corner(block: bytes, values: np.ndarray, transpose: bool) -> Corner:
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    canvas[:values.shape[0], :values.shape[1]] = values
    return _from_canvas(block, canvas, values.shape, transpose)


def _from_canvas(block: bytes, canvas: np.ndarray, shape: tuple[int, ...], transpose: bool) -> Corner:
    flat = canvas.reshape(-1)
    return Corner(block, int(shape[0]), int(shape[1]), _bits(flat < 0), _bits(flat != 0), transpose)


def _bits(mask: np.ndarray) -> int:
    return int.from_bytes(np.packbits(mask, bitorder="little").tobytes(), "little")


def bands(prepared: Prepared) -> np.ndarray:
    """The BANDS MinHash band keys (uint64) of each prepared corner, one row per corner."""
    count = len(prepared.corners)
    if not count:
        return np.zeros((0, BANDS), dtype=np.uint64)
    canvases = prepared.canvases
    magnitude = np.abs(canvases).reshape(count, SIDE, SIDE)
    quarters = np.array([max(c.columns // 4, 1) for c in prepared.corners])
    # In each row, the quarter of its cells with the largest magnitudes (ties included): ranks within a row
    # survive per-row scales (int8 weights are stored divided by one scale per output row) and pruning.
    threshold = np.empty((count, SIDE, 1), dtype=np.float32)
    for quarter in np.unique(quarters).tolist():
        chosen_corners = np.flatnonzero(quarters == quarter)
        kth = SIDE - quarter
        threshold[chosen_corners] = np.partition(magnitude[chosen_corners], kth, axis=2)[:, :, kth:kth + 1]
    magnitude = magnitude.reshape(count, SIDE * SIDE)
    threshold = np.repeat(threshold.reshape(count, SIDE), SIDE, axis=1)
    chosen = (magnitude >= threshold) & (magnitude > 0)
    corner_index, cell = np.nonzero(chosen)
    hashes = _KEY_HASH[cell * 2 + (canvases[corner_index, cell] < 0)]
    bins = (hashes % np.uint64(_BINS)).astype(np.int64)
    minima = np.full(count * _BINS, _EMPTY, dtype=np.uint64)
    np.minimum.at(minima, corner_index * _BINS + bins, hashes // np.uint64(_BINS))
    per_band = minima.reshape(count, BANDS, ROWS_PER_BAND)
    combined = np.broadcast_to(_BAND_SALT, (count, BANDS)).copy()
    for column in range(ROWS_PER_BAND):
        combined = _splitmix(combined ^ per_band[:, :, column])
    return combined


def agreement(a: Corner, b: Corner) -> tuple[float, int]:
    """(share of the cells non-zero in both whose signs agree, how many such cells)."""
    common = a.nonzero & b.nonzero
    count = common.bit_count()
    if count == 0:
        return 0.0, 0
    return 1.0 - ((a.signs ^ b.signs) & common).bit_count() / count, count


def matches(a: Corner, b: Corner) -> float | None:
    """The agreement when `a` and `b` are the same tensor's corner in the same orientation, else None."""
    share, count = agreement(a, b)
    return share if count >= MIN_COMMON and share >= MATCH_AGREEMENT else None
