"""Whole models: private tensors count, public ones (frozen, or the base of a fine-tune) do not.

Arrays stand in for files here (the prints are what fingerprint_array computes for the same tensor in a
file); tests/similarity checks the same rules on files written by the real tools.
"""

from __future__ import annotations

import numpy as np
import pytest

from weightwarden.agent.events import TensorPrint
from weightwarden.agent.fingerprint.tensors import fingerprint_array
from weightwarden.agent.similarity.matcher import SimilarityIndex

Model = dict[str, np.ndarray]
FROZEN = ("t0", "t1", "t2")


def model(seed: int, count: int = 10, side: int = 96) -> Model:
    rng = np.random.default_rng(seed)
    return {f"t{i}": (rng.standard_normal((side, side)) * 0.02).astype(np.float32) for i in range(count)}


def fine_tune(base: Model, seed: int, size: float = 0.003, frozen: tuple[str, ...] = FROZEN) -> Model:
    rng = np.random.default_rng(seed)
    return {name: value if name in frozen else
            (value + rng.standard_normal(value.shape) * size).astype(np.float32) for name, value in base.items()}


def prints(weights: Model) -> list[TensorPrint]:
    return [fingerprint_array(value, name) for name, value in weights.items()]


def rounded(weights: Model, levels: int) -> Model:
    """Symmetric rounding to `levels` steps per 32-value block (what Q8_0 / Q4_0 do)."""
    out = {}
    for name, value in weights.items():
        blocks = value.reshape(-1, 32)
        scale = np.abs(blocks).max(axis=1, keepdims=True) / levels
        out[name] = (np.round(blocks / scale) * scale).reshape(value.shape).astype(np.float32)
    return out


@pytest.fixture
def lineage() -> dict[str, Model]:
    base = model(1)
    return {"base": base, "private": fine_tune(base, 2), "sibling": fine_tune(base, 3), "unrelated": model(4)}


def index_of(lineage: dict[str, Model], *, with_public: bool = True) -> SimilarityIndex:
    index = SimilarityIndex()
    if with_public:
        index.add("/hub/base.safetensors", "org/base", prints(lineage["base"]), public=True)
    index.add("/models/private.safetensors", "private", prints(lineage["private"]), public=False)
    return index


def test_copies_of_the_private_fine_tune_match_and_say_how(lineage: dict[str, Model]) -> None:
    index = index_of(lineage)
    for label, copy in (("copy", lineage["private"]), ("int8-like", rounded(lineage["private"], 127)),
                        ("4-bit-like", rounded(lineage["private"], 7)),
                        ("fine-tuned further", fine_tune(lineage["private"], 9, 0.002, ())),
                        ("transposed", {k: v.T.copy() for k, v in lineage["private"].items()})):
        (found,) = index.match(prints(copy))
        assert found.model == "private", label
        assert found.total_tensors == 7 and found.public_tensors == 3, label
        assert found.matched_tensors == 7, label
        assert found.public_base == "org/base", label
        assert found.delta_share is not None and 0.5 < found.delta_share < 1.5, label
        assert found.delta_z is not None and found.delta_z >= 5, label
        assert found.similarity > 0.5 and found.agreement > 0.9, label
        assert set(found.matched_names) == {f"t{i}" for i in range(3, 10)}, label


def test_the_public_base_its_rounding_and_a_sibling_fine_tune_match_nothing(lineage: dict[str, Model]) -> None:
    index = index_of(lineage)
    for label, other in (("base", lineage["base"]), ("base 4-bit-like", rounded(lineage["base"], 7)),
                         ("sibling", lineage["sibling"]), ("sibling int8-like", rounded(lineage["sibling"], 127)),
                         ("unrelated", lineage["unrelated"])):
        assert index.match(prints(other)) == [], label


def test_without_the_public_base_every_tensor_is_private(lineage: dict[str, Model]) -> None:
    index = index_of(lineage, with_public=False)
    (found,) = index.match(prints(lineage["base"]))  # the machine cannot know the base is public
    assert found.total_tensors == 10 and found.public_tensors == 0 and found.public_base is None
    index.add("/hub/base.safetensors", "org/base", prints(lineage["base"]), public=True)
    assert index.match(prints(lineage["base"])) == []  # known now: the base's tensors are no evidence


def test_losing_the_public_base_makes_its_tensors_private_again(lineage: dict[str, Model]) -> None:
    index = index_of(lineage)
    assert index.counterpart("/models/private.safetensors", "t0") == ("org/base", "/hub/base.safetensors")
    index.remove("/hub/base.safetensors")
    assert index.counterpart("/models/private.safetensors", "t0") is None
    (found,) = index.match(prints(lineage["base"]))
    assert found.public_tensors == 0


def test_a_model_equal_to_its_public_base_has_nothing_private() -> None:
    base = model(5)
    index = SimilarityIndex()
    index.add("/hub/base.safetensors", "org/base", prints(base), public=True)
    index.add("/models/same.safetensors", "same", prints(base), public=False)
    assert index.match(prints(base)) == []


def test_a_subset_of_tensors_is_a_partial_match(lineage: dict[str, Model]) -> None:
    index = index_of(lineage, with_public=False)
    subset = {k: v for k, v in lineage["private"].items() if k in ("t4", "t5")}
    (found,) = index.match(prints(subset))
    assert (found.matched_tensors, found.total_tensors) == (2, 10)
    assert found.similarity == pytest.approx(0.2, abs=0.01)


def test_the_file_itself_is_never_its_own_source(lineage: dict[str, Model]) -> None:
    index = index_of(lineage)
    assert index.match(prints(lineage["private"]), lambda path: path == "/models/private.safetensors") == []


def test_many_unrelated_models_never_match() -> None:
    index = SimilarityIndex()
    for seed in range(60):
        index.add(f"/models/m{seed}.safetensors", f"m{seed}", prints(model(100 + seed)), public=False)
    for seed in range(60):
        assert index.match(prints(model(1000 + seed))) == []
