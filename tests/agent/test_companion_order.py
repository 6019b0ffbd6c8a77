"""A protected OpenVINO or ONNX-with-external-data model copied into a watched folder is recognised whole,
with a `model-copy` alert for its weights file too, whichever of its two files arrives first: the weights
file examined before its model file existed is examined again once the model file is identified."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import write_config
from tests.agent.identify import model_dirs
from tests.agent.in_thread import agent_in_thread
from tests.waiting import wait_for
from weightwarden.agent.config import load_config
from weightwarden.agent.events import ModelFile
from weightwarden.agent.fingerprint import FileKey
from weightwarden.agent.service import Agent


@pytest.fixture
def running_agent(tmp_path: Path) -> Iterator[tuple[Agent, dict[str, tuple[Path, Path]], Path]]:
    """An agent protecting an OpenVINO pair and an ONNX model with external data (written by onnx), and
    watching `elsewhere`. Yields the agent, (model file, weights file) per family, and the watched folder."""
    models, elsewhere, data = tmp_path / "models", tmp_path / "elsewhere", tmp_path / "data"
    for folder in (models, elsewhere, data):
        folder.mkdir()
    onnx = model_dirs.onnx_with_external_data(models / "encoder")
    pairs = {"openvino": model_dirs.openvino_pair(models / "detector", net_name="face-detector"),
             "onnx": (onnx, onnx.with_name(onnx.name + ".data"))}
    config = load_config(write_config(tmp_path / "config.toml", data_dir=data, protected=[models],
                                      watched=[elsewhere], settle=0.05), mode="user")
    with agent_in_thread(config) as agent:
        wait_for(lambda: len(agent.inventory) == 4, timeout=30, what="the protected models' four files")
        yield agent, pairs, elsewhere


def copy(source: Path, target: Path) -> None:
    # Content only, as `cp` does: these tests are about the order of arrival (a copy whose mtime is set
    # while it is read, as `cp -p` does, is tests/agent/test_changing_copy.py's subject).
    shutil.copyfile(source, target)


def _cached_as_no_model(agent: Agent, path: Path) -> bool:
    try:
        cached = agent.cache.get(FileKey.of(os.stat(path)))
    except FileNotFoundError:
        return False
    return cached is not None and cached.format is None


def _inventoried(agent: Agent, *paths: Path) -> list[ModelFile] | None:
    found = [agent.inventory.get(str(path)) for path in paths]
    return [m for m in found if m is not None] if all(found) else None


def _copy_alerts(agent: Agent, path: Path) -> list[dict[str, Any]]:
    agent.writer.flush()
    return [a for a in agent.store.alerts() if a["rule"] == "model-copy" and str(path) in a["paths"]]


def _expect_whole_copy(agent: Agent, model_copy: Path, weights_copy: Path, source: tuple[Path, Path]) -> None:
    copies = wait_for(lambda: _inventoried(agent, model_copy, weights_copy), timeout=20,
                      what=f"{model_copy.name} and {weights_copy.name} in the inventory")
    originals = _inventoried(agent, *source)
    assert originals is not None
    protected = {m.model for m in originals}
    assert len(protected) == 1
    assert {m.model for m in copies} == protected  # one logical model, the protected one's
    for path, original in zip((model_copy, weights_copy), source, strict=True):
        (alert,) = wait_for(lambda p=path: _copy_alerts(agent, p), timeout=20, what=f"the copy alert for {path}")
        assert alert["model"] in protected
        assert str(original) in alert["paths"]
    stored = {f.path: f for f in agent.store.model_files()}
    assert stored[str(weights_copy)].details["part_of"] == model_copy.name


def test_weights_copied_before_their_model_file_are_recognised_with_a_copy_alert(
        running_agent: tuple[Agent, dict[str, tuple[Path, Path]], Path]) -> None:
    agent, pairs, elsewhere = running_agent
    targets = {family: (elsewhere / family / model.name, elsewhere / family / weights.name)
               for family, (model, weights) in pairs.items()}
    for family, (_, weights) in pairs.items():
        targets[family][1].parent.mkdir()
        copy(weights, targets[family][1])  # the weights alone: raw floats, no model by themselves
    for family in pairs:
        wait_for(lambda f=family: _cached_as_no_model(agent, targets[f][1]), timeout=20,
                 what=f"the agent to examine the {family} weights on their own")
    assert all(agent.inventory.get(str(weights)) is None for _, weights in targets.values())

    for family, (model, _) in pairs.items():
        copy(model, targets[family][0])

    for family, (model_copy, weights_copy) in targets.items():
        _expect_whole_copy(agent, model_copy, weights_copy, pairs[family])


def test_weights_copied_after_their_model_file_are_recognised_with_a_copy_alert(
        running_agent: tuple[Agent, dict[str, tuple[Path, Path]], Path]) -> None:
    agent, pairs, elsewhere = running_agent
    model, weights = pairs["openvino"]
    copy(model, elsewhere / model.name)
    wait_for(lambda: agent.inventory.get(str(elsewhere / model.name)), timeout=20, what="the copied model file")

    copy(weights, elsewhere / weights.name)

    _expect_whole_copy(agent, elsewhere / model.name, elsewhere / weights.name, pairs["openvino"])
