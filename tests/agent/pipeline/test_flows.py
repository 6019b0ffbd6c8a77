"""The flow tracker on real processes (pipes learnt from /proc) and the ledger's bounds.

The observations are built here (the sensors' tests cover how they are made); the processes, their pipes,
their files and the ledger are real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.waiting import wait_for
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.lineage import OTHER, OUTPUTS_KEPT, PROCESSES_KEPT
from weightwarden.agent.detect.policy import load_policy_rules
from weightwarden.agent.events import ModelFile, ProcessInfo
from weightwarden.agent.pipeline.flows import MEMBERS_KEPT, FlowTracker, children_of
from weightwarden.agent.sensors.access import AccessObservation
from weightwarden.agent.sensors.files import FileObservation

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")

SIZE = 1 << 20


@pytest.fixture
def model(tmp_path: Path) -> ModelFile:
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(SIZE))
    return ModelFile(path=str(path), format="safetensors", size=SIZE, model="secret")


TRACKERS: list[FlowTracker] = []  # closed after each test (tests/agent/pipeline/conftest.py): a sock_diag socket


def tracker_for(model: ModelFile) -> FlowTracker:
    engine = DetectionEngine(load_policy_rules())
    tracker = FlowTracker(engine.lineage, model_of=lambda path, device, inode: None, file_state=lambda path: OTHER)
    TRACKERS.append(tracker)
    return tracker


def opened(model: ModelFile, pid: int, kind: str = "opened", read: int | None = None) -> AccessObservation:
    st = os.stat(model.path)
    return AccessObservation(kind, model.path, st.st_dev, st.st_ino, SIZE,
                             ProcessInfo(pid=pid, name="reader", user="ana", uid=1000), bytes_read=read)


def closed(path: Path, pid: int) -> FileObservation:
    return FileObservation("closed", str(path), pid=pid, size=path.stat().st_size if path.exists() else None)


@pytest.fixture
def pipeline() -> Iterator[tuple[int, int, subprocess.Popen[bytes]]]:
    """`sleep | sleep` under one shell: two siblings joined by a pipe (pids of both, the shell)."""
    shell = subprocess.Popen(["sh", "-c", "sleep 30 | sleep 31"])
    try:
        kids = wait_for(lambda: (k if len(k := children_of(shell.pid)) == 2 else None), timeout=10,
                        what="both sides of the pipeline")
        yield kids[0], kids[1], shell
    finally:
        for kid in children_of(shell.pid):
            os.kill(kid, 9)
        shell.kill()
        shell.wait(timeout=10)


def test_a_shell_pipeline_is_one_flow(model: ModelFile, pipeline: tuple[int, int, subprocess.Popen[bytes]]) -> None:
    first, second, shell = pipeline
    tracker = tracker_for(model)
    tracker.access(opened(model, first), model)
    assert {first, second} <= tracker.tainted_pids  # the fs-writes sensor hands over their small closes too
    assert shell.pid not in tracker.tainted_pids  # the shell that made the pipe holds no end of it


def test_a_reader_that_exits_before_any_write_still_taints_its_pipe_peer(
        model: ModelFile, pipeline: tuple[int, int, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    first, second, _ = pipeline
    tracker = tracker_for(model)
    tracker.access(opened(model, first), model)
    tracker.access(opened(model, first, "read", SIZE), model)
    os.kill(first, 9)
    wait_for(lambda: exited(first), timeout=10, what="the reader to exit")
    out = tmp_path / "exfil.bin"
    out.write_bytes(os.urandom(SIZE))
    tracker.file(closed(out, second))
    alerts = tracker.tick(time.monotonic() + 5)
    assert len(alerts) == 1 and alerts[0].model == "secret" and str(out) in alerts[0].paths


def exited(pid: int) -> bool:
    """Gone, or a zombie (it may be reaped between the two looks)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except (OSError, IndexError):
        return True


def test_a_reused_pid_is_another_process(model: ModelFile, pipeline: tuple[int, int, subprocess.Popen[bytes]],
                                         tmp_path: Path) -> None:
    first, second, _ = pipeline
    tracker = tracker_for(model)
    tracker.access(opened(model, first), model)
    tracker.access(opened(model, first, "read", SIZE), model)
    start, flow, parent = tracker._members[second]
    assert start is not None
    tracker._members[second] = (start - 1, flow, parent)  # as if `second` were a new process under an old pid
    tracker._pipes.clear()  # and shared nothing with the flow
    out = tmp_path / "unrelated.bin"
    out.write_bytes(os.urandom(SIZE))
    tracker.file(closed(out, second))
    assert tracker.tick(time.monotonic() + 5) == []


def test_a_sparse_output_counts_its_allocated_blocks(model: ModelFile, tmp_path: Path) -> None:
    reader = subprocess.Popen(["sleep", "30"])
    try:
        tracker = tracker_for(model)
        tracker.access(opened(model, reader.pid), model)
        tracker.access(opened(model, reader.pid, "read", SIZE), model)
        sparse = tmp_path / "sparse.bin"
        with sparse.open("wb") as handle:
            handle.truncate(1 << 30)  # claims 1 GiB
            handle.write(b"x" * 4096)
        tracker.file(closed(sparse, reader.pid))
        assert tracker.tick(time.monotonic() + 5) == []  # about 4 KiB written: far below half a MiB
    finally:
        reader.kill()
        reader.wait(timeout=10)


def test_a_flow_of_ten_thousand_processes_has_bounded_state(model: ModelFile) -> None:
    tracker = tracker_for(model)
    ledger = tracker.ledger
    ledger.read(1, ProcessInfo(pid=1, name="reader", user="ana"), "secret", model.path, SIZE, SIZE, 0.0)
    for pid in range(10_000, 20_000):
        ledger.wrote(1, ProcessInfo(pid=pid, name="w"), f"/home/ana/out/{pid}", "local", 100, None, None, 0.0)
    for pid in range(100_000, 100_000 + MEMBERS_KEPT + 10_000):
        tracker._join(pid, None, 1, None, set())
    assert len(tracker._members) == MEMBERS_KEPT
    (alert,) = ledger.decide(1.0, lambda path: OTHER)
    evidence = alert.evidence
    assert len(evidence.processes) <= PROCESSES_KEPT and evidence.flow_processes > 10_000  # type: ignore[attr-defined]
    assert len(evidence.outputs) == OUTPUTS_KEPT  # type: ignore[attr-defined]
    assert evidence.output_bytes == 10_000 * 100  # type: ignore[attr-defined]  # every output counted
