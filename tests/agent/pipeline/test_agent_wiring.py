"""The agent's real wiring, driven on the test's thread: observations in, dispatcher drained, records out.

The examination pool is agent.pipeline.testing.SynchronousExecutor, so an examination or a scan is done
when it is handed out, and what it found waits on the ordered queue for the next drain: no threads, no
timing, the same handlers, inventory upkeep and detection as the running agent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import write_config
from tests.conftest import write_safetensors
from weightwarden.agent.config import load_config
from weightwarden.agent.events import Event
from weightwarden.agent.pipeline.files import (
    SMALLEST_MODEL_BYTES,
    BurstQuiet,
    Examined,
    Identified,
    RescanRequest,
    ScanDone,
    ScanFound,
)
from weightwarden.agent.pipeline.testing import SynchronousExecutor
from weightwarden.agent.sensors.access import AccessObservation, AccessOverflow
from weightwarden.agent.sensors.files import FileObservation, SensorHealth
from weightwarden.agent.sensors.mounts import MountObservation
from weightwarden.agent.sensors.network import ConnectionObservation
from weightwarden.agent.service import Agent
from weightwarden.agent.walk import ScanIssue


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    for name in ("models", "elsewhere", "data"):
        (tmp_path / name).mkdir()
    write_safetensors(tmp_path / "models" / "llama" / "model.safetensors", seed=3)
    config = write_config(tmp_path / "config.toml", data_dir=tmp_path / "data", protected=[tmp_path / "models"],
                          watched=[tmp_path / "elsewhere"])
    driven = Agent(load_config(config, mode="user"), executor=SynchronousExecutor())
    try:
        yield driven
    finally:
        driven.writer.close()
        driven.store.close()


def settle(agent: Agent) -> None:
    """Drain until nothing is left: each drain may hand out work whose results the next one handles."""
    for _ in range(10):
        if not agent.dispatcher.drain():
            return
    raise AssertionError("the pipeline did not settle")


def stored(agent: Agent) -> list[dict[str, Any]]:
    """Events and alerts as committed, in sequence order."""
    assert agent.writer.flush(timeout=10)
    records = [*agent.store.events(limit=10_000), *agent.store.alerts(limit=10_000)]
    return sorted(records, key=lambda r: r["sequence"])


def name(record: dict[str, Any]) -> str:
    return record["rule"] if "rule" in record else record["event"]["action"]


def test_every_observation_the_parts_emit_has_a_handler(agent: Agent) -> None:
    for kind in (FileObservation, SensorHealth, Identified, Examined, ScanFound, ScanIssue, ScanDone, RescanRequest,
                 BurstQuiet, AccessObservation, AccessOverflow, ConnectionObservation, MountObservation, Event):
        assert agent.dispatcher.handles(kind), kind.__name__


def test_lost_accesses_rescan_the_protected_roots(agent: Agent) -> None:
    agent.observations.emitter("access")(AccessOverflow())
    settle(agent)
    records = stored(agent)
    assert [name(r) for r in records] == ["model-discovered", "scan-finished"]
    assert records[1]["details"]["roots"] == agent.config.protected_roots


def test_a_copy_closed_in_a_watched_folder_is_one_alert_then_its_event(agent: Agent, tmp_path: Path) -> None:
    agent.observations.emitter("control")(RescanRequest(tuple(agent.config.protected_roots), "scan now"))
    settle(agent)
    copy = tmp_path / "elsewhere" / "notes.bin"
    shutil.copyfile(tmp_path / "models" / "llama" / "model.safetensors", copy)
    files = agent.observations.emitter("files")
    files(FileObservation("created", str(copy)))
    files(FileObservation("closed", str(copy)))
    settle(agent)
    records = stored(agent)
    assert [name(r) for r in records] == ["model-discovered", "scan-finished", "model-copy", "model-created"]
    alert, created = records[2], records[3]
    assert alert["paths"] == [str(tmp_path / "models" / "llama" / "model.safetensors"), str(copy)]
    assert created["details"]["copy_of"] == alert["paths"][0] and created["model"] == "llama"
    assert agent.inventory.get(str(copy)) is not None
    stored_files = {f.path for f in agent.store.model_files()}  # committed before the alert that names it
    assert str(copy) in stored_files


def test_moves_and_deletions_keep_the_inventory_in_step(agent: Agent, tmp_path: Path) -> None:
    agent.observations.emitter("control")(RescanRequest(tuple(agent.config.protected_roots), "scan now"))
    settle(agent)
    source = tmp_path / "models" / "llama"
    moved = tmp_path / "models" / "llama-renamed"
    source.rename(moved)
    files = agent.observations.emitter("files")
    files(FileObservation("moved", str(source), str(moved), is_directory=True))
    settle(agent)
    assert agent.inventory.get(str(moved / "model.safetensors")) is not None
    assert agent.inventory.get(str(source / "model.safetensors")) is None
    shutil.rmtree(moved)
    files(FileObservation("deleted", str(moved), is_directory=True))
    settle(agent)
    assert len(agent.inventory) == 0
    actions = [name(r) for r in stored(agent)]
    assert actions[-1] == "model-deleted" and "model-moved" in actions
    assert agent.store.model_files() == []


def test_a_small_closed_file_the_sensor_measured_is_not_examined(agent: Agent, tmp_path: Path) -> None:
    """Filesystem marks report every write on the machine: a closed file below SMALLEST_MODEL_BYTES (as the
    fs-writes sensor measured it) is not settled nor examined; one the sensor did not measure still is."""
    tiny = write_safetensors(tmp_path / "models" / "tiny" / "model.safetensors", seed=5, tensors=1, rows=2)
    assert tiny.stat().st_size < SMALLEST_MODEL_BYTES
    agent.observations.emitter("control")(RescanRequest(tuple(agent.config.protected_roots), "scan now"))
    settle(agent)
    files = agent.observations.emitter("files")
    measured, unmeasured = tmp_path / "elsewhere" / "a.bin", tmp_path / "elsewhere" / "b.bin"
    for copy in (measured, unmeasured):
        shutil.copyfile(tiny, copy)
    files(FileObservation("closed", str(measured), size=measured.stat().st_size))
    files(FileObservation("closed", str(unmeasured)))
    settle(agent)
    alerted = [r["paths"][-1] for r in stored(agent) if name(r) == "model-copy"]
    assert alerted == [str(unmeasured)]


def test_a_copy_met_by_its_file_event_and_a_rescan_at_once_is_one_alert(agent: Agent, tmp_path: Path) -> None:
    """A copy onto a mount that is being rescanned as it becomes watched: the file event's first look
    raises the alert, the rescan meets the same file before that look's full examination is back."""
    agent.observations.emitter("control")(RescanRequest(tuple(agent.config.protected_roots), "scan now"))
    settle(agent)
    copy = tmp_path / "elsewhere" / "notes.bin"
    shutil.copyfile(tmp_path / "models" / "llama" / "model.safetensors", copy)
    model = agent.files.scanner.examine(str(copy))
    assert model is not None and not isinstance(model, ScanIssue)
    pool = agent.observations.emitter("examinations")
    pool(Identified(model))
    pool(ScanFound(model, alert_copies=True))
    pool(Examined(str(copy), model))
    settle(agent)
    alerts = [r for r in stored(agent) if name(r) == "model-copy"]
    assert len(alerts) == 1 and alerts[0]["paths"][-1] == str(copy)
