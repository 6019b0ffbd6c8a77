"""Issue 16: a changed copy of the private fine-tune is recognised; its public base, a sibling fine-tune, other
models and the same recipe at another size are not. Every file is written by the real tools (torch,
safetensors, gguf-py with llama.cpp's K-quant encoders, torch.onnx, TorchScript, optimum-quanto) and examined
as the agent examines files."""

from __future__ import annotations

import importlib.util

import pytest

from tests.similarity import derived
from tests.similarity.recognition import PUBLIC_REPO, World, build, matches

pytestmark = pytest.mark.slow

def _wanted() -> tuple[str, ...]:
    """Every transformation whose tool is installed (optimum-quanto and onnxscript may not be: dev.sh
    installs them after the CPU build of torch)."""
    missing = {name for name, module in (("int8-quanto", "optimum.quanto"), ("onnx-default", "onnxscript"))
               if importlib.util.find_spec(module.split(".")[0]) is None}
    return tuple(name for name in derived.TRANSFORMATIONS if name not in missing)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build(tmp_path_factory.mktemp("similarity"), _wanted())


def test_the_public_base_is_public_and_the_fine_tune_is_protected(world: World) -> None:
    (base,) = world.public
    assert not base.protected and base.public and PUBLIC_REPO in (base.provenance.reason if base.provenance else "")
    assert world.private and all(f.protected for f in world.private)


@pytest.mark.parametrize("transformation", _wanted())
def test_a_changed_copy_of_the_private_model_is_recognised(world: World, transformation: str) -> None:
    (artefact,) = [a for a in world.artefacts if a.model == "private" and a.transformation == transformation]
    found = matches(world, artefact)
    private = world.private[0].model
    assert found, f"{transformation}: no match"
    best = found[0]
    assert best.model == private, f"{transformation}: matched {best.model}"
    assert best.public_base == world.public[0].model
    assert best.similarity >= 0.3, f"{transformation}: similarity {best.similarity}"
    assert best.matched_names and best.agreement >= 0.8
    # Fine-tuned tensors count only through the change they carry: it must be there.
    assert best.delta_share is not None and best.delta_share >= 0.92 and (best.delta_z or 0) >= 5


@pytest.mark.parametrize("model", ["public-base", "sibling", "unrelated-11", "unrelated-12", "other-size"])
def test_models_not_derived_from_the_private_one_match_nothing(world: World, model: str) -> None:
    artefacts = [a for a in world.artefacts if a.model == model]
    assert len(artefacts) == len(derived.CONTROL_TRANSFORMATIONS)
    for artefact in artefacts:
        assert matches(world, artefact) == [], f"{model} {artefact.transformation} matched"
