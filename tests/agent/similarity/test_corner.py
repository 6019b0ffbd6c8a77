"""Corners compare by the signs of their non-zero values, in either orientation; MinHash bands find them."""

from __future__ import annotations

import numpy as np
import pytest

from weightwarden.agent.fingerprint.tensors import fingerprint_array
from weightwarden.agent.similarity import corner as corners
from weightwarden.agent.similarity.lsh import BandIndex


def block(array: np.ndarray) -> bytes:
    return fingerprint_array(array.astype(np.float32)).block


def gaussian(seed: int, shape: tuple[int, int] = (64, 96)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def prepared(*arrays: np.ndarray, both: bool = False) -> corners.Prepared:
    return corners.prepare([block(a) for a in arrays], both=both)


def test_the_corner_is_the_top_left_32_by_32_whatever_the_tensor_size() -> None:
    weights = gaussian(1, (300, 500))
    found = corners.from_block(block(weights))
    assert found is not None and (found.rows, found.columns) == (32, 32)
    np.testing.assert_allclose(found.values, weights[:32, :32], rtol=1e-3)
    small = corners.from_block(block(gaussian(2, (8, 40))))
    assert small is not None and (small.rows, small.columns) == (8, 32)


def test_appended_rows_and_columns_keep_the_corner() -> None:
    weights = gaussian(3)
    padded = np.vstack([weights, gaussian(4, (100, 96))])  # extended vocabulary rows
    fused = np.vstack([weights, gaussian(5), gaussian(6)])  # q stacked with k and v
    a, b, c = (corners.from_block(block(x)) for x in (weights, padded, fused))
    assert a is not None and b is not None and c is not None
    assert corners.matches(a, b) == 1.0 and corners.matches(a, c) == 1.0


def test_a_transposed_copy_matches_only_the_transposed_corner() -> None:
    weights = gaussian(7)
    original, copy = corners.from_block(block(weights)), corners.from_block(block(weights.T.copy()))
    assert original is not None and copy is not None
    assert corners.matches(original, copy) is None
    assert corners.matches(original, copy.transposed()) == 1.0


def test_zeros_carry_no_sign_and_unrelated_tensors_agree_on_about_half() -> None:
    weights = gaussian(8)
    pruned = np.where(np.abs(weights) < np.quantile(np.abs(weights), 0.5), 0, weights)
    a, b = corners.from_block(block(weights)), corners.from_block(block(pruned))
    assert a is not None and b is not None
    share, common = corners.agreement(a, b)
    assert share == 1.0 and 400 < common < 600
    shares = []
    for seed in range(20):
        other = corners.from_block(block(gaussian(100 + seed)))
        assert other is not None
        shares.append(corners.agreement(a, other)[0])
        assert corners.matches(a, other) is None
    assert 0.45 < float(np.mean(shares)) < 0.55


def test_uniform_tensors_are_not_informative() -> None:
    for uniform in (np.ones((64, 64)), np.zeros((64, 64)), np.abs(gaussian(9))):
        found = corners.from_block(block(uniform))
        assert found is not None and not found.informative
    assert prepared(np.ones((64, 64))).corners == []


@pytest.mark.parametrize("change", ["prune", "noise", "scale-rows"])
def test_bands_of_a_changed_copy_share_keys_with_the_original(change: str) -> None:
    index = BandIndex()
    originals = [gaussian(seed) for seed in range(40)]
    keys = corners.bands(prepared(*originals))
    for ref_id, row in enumerate(keys):
        index.add(ref_id, row)
    rng = np.random.default_rng(0)
    found = 0
    for ref_id, weights in enumerate(originals):
        if change == "prune":
            copy = np.where(np.abs(weights) < np.quantile(np.abs(weights), 0.5), 0, weights)
        elif change == "noise":
            copy = weights + rng.standard_normal(weights.shape).astype(np.float32) * 0.05
        else:
            copy = weights * rng.uniform(0.2, 5.0, size=(weights.shape[0], 1)).astype(np.float32)
        candidates = index.candidates(corners.bands(prepared(copy))[0])
        assert candidates <= {ref_id} | set(range(40))
        found += ref_id in candidates
    assert found >= 36, f"only {found} of 40 changed copies found their original"


def test_bands_of_unrelated_tensors_rarely_collide() -> None:
    index = BandIndex()
    for ref_id, row in enumerate(corners.bands(prepared(*[gaussian(seed) for seed in range(300)]))):
        index.add(ref_id, row)
    queries = corners.bands(prepared(*[gaussian(1000 + seed) for seed in range(300)]))
    collisions = sum(len(found) for found in index.candidates_of(queries))
    assert collisions <= 5, f"{collisions} spurious candidates among 90,000 unrelated pairs"


def test_removed_tensors_are_no_longer_candidates_before_and_after_a_merge() -> None:
    index = BandIndex()
    keys = corners.bands(prepared(gaussian(1), gaussian(2)))
    index.add(1, keys[0])
    index.add(2, keys[1])
    index.remove(1)
    assert index.candidates(keys[0]) == set() and index.candidates(keys[1]) == {2}
    index._merge()
    assert index.candidates(keys[0]) == set() and index.candidates(keys[1]) == {2}
    assert len(index) == len(keys[1])
