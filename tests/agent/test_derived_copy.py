"""A converted, re-sharded, cast or partial copy of a protected model raises `model-copy`, naming the source
model and the share of its tensors and bytes the copy holds: through the inventory, and through the agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.agent.cli.helpers import wait_for, write_config
from tests.agent.fingerprint import writers
from tests.agent.in_thread import agent_in_thread
from weightwarden.agent.alert_evidence import DerivedCopyEvidence
from weightwarden.agent.config import load_config
from weightwarden.agent.detect.copy import CopyCandidate
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.rules import load_rules
from weightwarden.agent.events import ModelFile
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.scanner import Scanner
from weightwarden.agent.service import Agent

TENSORS = writers.model_tensors(seed=11, layers=4, width=64)
ENGINE = DetectionEngine(load_rules())  # the built-in rules: model-copy rates copies by destination
NAMES = list(TENSORS)


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(Identifier(), FingerprintCache(), workers=2)


def examine(scanner: Scanner, path: Path) -> ModelFile:
    found = scanner.examine(str(path))
    assert isinstance(found, ModelFile), found
    return found


@pytest.fixture
def protected(tmp_path: Path, scanner: Scanner) -> Inventory:
    """The protected model: two safetensors shards (float32) in folder `llama-mini`."""
    shards = writers.shards(tmp_path / "models" / "llama-mini", TENSORS, 2)
    return Inventory(examine(scanner, path) for path in shards)


CONVERSIONS: list[tuple[str, Any, float]] = [
    # (case, writer of the copy from TENSORS, expected tensor share)
    ("merged-safetensors", lambda d: writers.safetensors(d / "all.safetensors", TENSORS), 1.0),
    ("gguf-f16", lambda d: writers.gguf_file(d / "x.gguf", TENSORS, np.float16), 1.0),
    ("gguf-f32", lambda d: writers.gguf_file(d / "x.gguf", TENSORS), 1.0),
    ("torch-bf16", lambda d: writers.torch_zip(d / "x.pt", TENSORS, "bfloat16"), 1.0),
    ("npz-f16", lambda d: writers.npz(d / "x.npz", TENSORS, np.float16), 1.0),
    ("safetensors-bf16", lambda d: writers.safetensors_torch_dtype(d / "x.safetensors", TENSORS, "bfloat16"), 1.0),
]


@pytest.mark.parametrize(("write", "share"), [c[1:] for c in CONVERSIONS], ids=[c[0] for c in CONVERSIONS])
def test_conversions_match_the_whole_sharded_model(tmp_path: Path, scanner: Scanner, protected: Inventory,
                                                   write: Any, share: float) -> None:
    copy = examine(scanner, write(tmp_path / "elsewhere"))

    assert protected.matches(copy) == []  # other bytes: no exact match
    (match,) = protected.tensor_matches(copy)
    assert match.model == "llama-mini"
    assert match.tensor_share == share and match.byte_share == share
    assert len(match.source_paths) == 2

    alert = ENGINE.copy(CopyCandidate(copy, derived=(match,), destination_kind="temporary"))
    assert alert is not None and alert.rule_id == "model-copy" and alert.model == "llama-mini"
    assert isinstance(alert.evidence, DerivedCopyEvidence)
    assert alert.evidence.tensor_share == 1.0 and alert.evidence.byte_share == 1.0
    assert alert.paths[-1] == copy.path and alert.severity == 6


def test_partial_copy_reports_its_share(tmp_path: Path, scanner: Scanner, protected: Inventory) -> None:
    wanted = ["embed.weight", "layers.0.attn.weight", "layers.0.mlp.weight"]
    copy = examine(scanner, writers.torch_zip(tmp_path / "stolen.pt", {k: TENSORS[k] for k in wanted}, "float16"))

    (match,) = protected.tensor_matches(copy)

    expected_bytes = sum(TENSORS[k].nbytes for k in wanted)
    assert (match.matched_tensors, match.matched_bytes) == (3, expected_bytes)
    assert match.total_tensors < len(TENSORS)  # identical norm and bias tensors count once
    assert match.total_bytes == pytest.approx(sum(v.nbytes for v in TENSORS.values()), rel=0.05)
    alert = ENGINE.copy(CopyCandidate(copy, derived=(match,), destination_kind="local"))
    assert alert is not None and alert.title.startswith("Partial copy")
    assert "3 of" in alert.message


def test_only_uniform_tensors_in_common_is_no_match(tmp_path: Path, scanner: Scanner, protected: Inventory) -> None:
    other = writers.model_tensors(seed=99, layers=4, width=64)  # same architecture, other weights
    copy = examine(scanner, writers.safetensors(tmp_path / "other.safetensors", other))

    assert protected.tensor_matches(copy) == []


def test_removed_files_stop_matching(tmp_path: Path, scanner: Scanner, protected: Inventory) -> None:
    copy = examine(scanner, writers.gguf_file(tmp_path / "x.gguf", TENSORS))
    for source in protected.under(str(tmp_path / "models")):
        protected.remove(source.path)

    assert protected.tensor_matches(copy) == []


@pytest.fixture
def running_agent(tmp_path: Path) -> Iterator[tuple[Agent, dict[str, Path]]]:
    paths = {name: tmp_path / name for name in ("models", "elsewhere", "data")}
    for path in paths.values():
        path.mkdir()
    writers.shards(paths["models"] / "llama-mini", TENSORS, 2)
    config = load_config(write_config(tmp_path / "config.toml", data_dir=paths["data"],
                                      protected=[paths["models"]], watched=[paths["elsewhere"]]), mode="user")
    with agent_in_thread(config) as agent:
        wait_for(lambda: len(agent.inventory) == 2, timeout=30, what="the initial inventory")
        yield agent, paths


def test_agent_alerts_on_a_gguf_export_and_the_store_keeps_tensor_prints(
        running_agent: tuple[Agent, dict[str, Path]]) -> None:
    agent, paths = running_agent
    target = paths["elsewhere"] / "notes.txt"
    writers.gguf_file(paths["elsewhere"] / "tmp.gguf", TENSORS, np.float16).rename(target)

    def copy_alerts() -> list[dict[str, Any]]:
        agent.writer.flush()
        return [a for a in agent.store.alerts() if a["rule"] == "model-copy" and str(target) in a["paths"]]

    (alert,) = wait_for(copy_alerts, timeout=30, what="the model-copy alert for the GGUF export")
    assert alert["model"] == "llama-mini"
    assert alert["evidence"]["matched_on"] == "tensor_fingerprints"
    assert alert["evidence"]["tensor_share"] == 1.0 and alert["evidence"]["byte_share"] == 1.0
    assert sorted(Path(p).name for p in alert["evidence"]["source_paths"]) == [
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    stored = {f.path: f for f in agent.store.model_files()}
    assert len(stored[str(target)].tensors) == len(TENSORS)
    assert stored[str(target)].model == "llama-mini"


def test_resharding_a_single_file_model_splits_the_share(tmp_path: Path, scanner: Scanner) -> None:
    source = examine(scanner, writers.safetensors(tmp_path / "models" / "solo" / "model.safetensors", TENSORS))
    inventory = Inventory([source])
    shards = [examine(scanner, p) for p in writers.shards(tmp_path / "out", TENSORS, 3)]

    matches = [inventory.tensor_matches(shard)[0] for shard in shards]

    assert {m.model for m in matches} == {"solo"}
    assert all(0 < m.byte_share < 1 for m in matches)
    # Every matrix is in some shard (1-D norms have no corner and are no evidence of a copy).
    matrices = sum(t.bytes for t in source.tensors if t.block)
    assert matrices > source.size // 2
    assert sum(m.matched_bytes for m in matches) == matches[0].total_bytes == matrices
