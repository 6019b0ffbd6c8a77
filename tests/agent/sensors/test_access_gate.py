"""The access sensor as a gate (issue 17): held opens of a policy-governed file decided, refused with EPERM
under enforce, and never held past the deadline. Real fanotify, real processes, a real policy file."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.sensors.conftest import Collected, require_fanotify, wait_for
from tests.conftest import write_safetensors
from weightwarden.agent.access import gate as gate_module
from weightwarden.agent.access.decide import Decider, ModelRef, Opener, opener_of
from weightwarden.agent.access.gate import Gate
from weightwarden.agent.access.policy import AccessPolicies
from weightwarden.agent.executables import ExecutableHashes
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.access import AccessFailOpen, AccessObservation, AccessSensor

pytestmark = pytest.mark.root

CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")
HEAD = os.path.realpath(shutil.which("head") or "/usr/bin/head")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_safetensors(tmp_path / "models" / "locked" / "model.safetensors", rows=256)


def _policies(tmp_path: Path, model: Path, mode: str) -> AccessPolicies:
    folder = tmp_path / "access.d"
    folder.mkdir(exist_ok=True)
    (folder / "locked.yml").write_text(
        f"id: locked\napplies_to:\n  paths: [\"{model.parent}/**\"]\nmode: {mode}\n"
        f"allow:\n  - users: [root]\n    programs: [{{executable: {CAT}}}]\n")
    policies = AccessPolicies([str(folder)])
    assert not policies.current.problems, policies.current.problems
    return policies


class SlowModels:
    """The inventory's lookup, which a test can make hang (a decision that never comes back)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()

    def __call__(self, path: str, device: int, inode: int) -> ModelRef:
        self.release.wait(30)
        return ModelRef(path, "locked")


def _sensor(cache: ProcessCache, collected: Collected, policies: AccessPolicies,
            models: SlowModels) -> Iterator[AccessSensor]:
    require_fanotify()
    holder: list[AccessSensor] = []
    gate = Gate(Decider(policies), models, lambda device, inode: holder[0].is_marked(device, inode))
    sensor = AccessSensor(cache, collected.add, collected.add_health, gate=gate)
    holder.append(sensor)
    sensor.start()
    try:
        yield sensor
    finally:
        models.release.set()
        sensor.stop()


@pytest.fixture
def models() -> SlowModels:
    return SlowModels()


@pytest.fixture
def enforcing(cache: ProcessCache, collected: Collected, tmp_path: Path, model: Path,
              models: SlowModels) -> Iterator[AccessSensor]:
    yield from _sensor(cache, collected, _policies(tmp_path, model, "enforce"), models)


@pytest.fixture
def monitoring(cache: ProcessCache, collected: Collected, tmp_path: Path, model: Path,
               models: SlowModels) -> Iterator[AccessSensor]:
    yield from _sensor(cache, collected, _policies(tmp_path, model, "monitor"), models)


def test_enforce_allows_the_allowed_program_and_refuses_another(enforcing: AccessSensor, collected: Collected,
                                                               model: Path) -> None:
    content = model.read_bytes()  # before the mark: the test's own open is not the agent's
    enforcing.protect([str(model)])
    allowed = subprocess.run([CAT, str(model)], capture_output=True, timeout=30)
    assert allowed.stdout == content
    refused = subprocess.run([HEAD, "-c", "8", str(model)], capture_output=True, timeout=30)
    assert refused.returncode != 0 and b"Operation not permitted" in refused.stderr
    (denied,) = wait_for(lambda: [o for o in collected.access("denied") if o.process.executable == HEAD],
                         timeout=10, what="the refused open observed")
    assert denied.process.executable == HEAD and denied.verdict is not None
    assert denied.verdict.decision.policy_id == "locked" and not denied.verdict.decision.permit
    opened = wait_for(lambda: [o for o in collected.access("opened") if o.process.executable == CAT], timeout=10,
                      what="cat's open observed")
    assert opened[0].verdict is not None and opened[0].verdict.decision.allowed
    assert enforcing.decided >= 2 and enforcing.denied >= 1


def test_monitor_lets_every_open_through_and_reports_would_deny(monitoring: AccessSensor, collected: Collected,
                                                               model: Path) -> None:
    content = model.read_bytes()
    monitoring.protect([str(model)])
    assert subprocess.run([HEAD, "-c", str(len(content)), str(model)], capture_output=True,
                          timeout=30).stdout == content
    (opened,) = wait_for(lambda: [o for o in collected.access("opened") if o.process.executable == HEAD],
                         timeout=10, what="head's open observed")
    assert opened.verdict is not None and opened.verdict.notable
    assert not opened.verdict.decision.allowed and opened.verdict.decision.permit
    assert not collected.access("denied")


def test_a_decision_that_hangs_is_answered_allow_at_the_deadline(enforcing: AccessSensor, collected: Collected,
                                                                model: Path, models: SlowModels) -> None:
    content = model.read_bytes()
    enforcing.protect([str(model)])
    models.release.clear()  # the next decision never comes back on its own
    started = time.monotonic()
    reader = subprocess.run([HEAD, "-c", str(len(content)), str(model)], capture_output=True, timeout=30)
    waited = time.monotonic() - started
    assert reader.stdout == content  # let through undecided, though head is not allowed
    assert waited < 5, f"the open waited {waited:.2f} s"
    models.release.set()
    (failed, *_) = wait_for(lambda: [o for o in collected.items if isinstance(o, AccessFailOpen)], timeout=10,
                            what="the undecided open reported")
    assert failed.count >= 1 and "within" in failed.reason
    assert any(h.status == "degraded" and "without a decision" in h.message for h in collected.health)


def test_a_known_opener_is_read_from_proc_once(enforcing: AccessSensor, model: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []

    def counted(pid: int, hashes: ExecutableHashes) -> Opener | None:
        reads.append(pid)
        return opener_of(pid, hashes)

    monkeypatch.setattr(gate_module, "opener_of", counted)  # the real reader, counted per process
    enforcing.protect([str(model)])
    code = (f"import os\nrefused = 0\nfor _ in range(50):\n    try:\n        os.open({str(model)!r}, os.O_RDONLY)\n"
            "    except PermissionError:\n        refused += 1\nprint(refused)\n")
    opener = subprocess.Popen(["python3", "-c", code], stdout=subprocess.PIPE, text=True)
    out, _ = opener.communicate(timeout=60)
    assert out.strip() == "50"  # python3 is not the allowed program: every open is refused
    assert reads.count(opener.pid) == 1  # one process image, read from /proc once for its 50 opens


def test_opens_queued_behind_a_stuck_sensor_go_through_at_the_deadline(cache: ProcessCache, model: Path) -> None:
    """Stuck anywhere in its batch (here: handing on an observation), the sensor reads no new opens; the
    watchdog answers for them (as when a read of /proc waits on a FUSE server that waits on us)."""
    require_fanotify()
    content = model.read_bytes()
    release = threading.Event()
    seen: list[object] = []

    def stuck_sink(item: object) -> None:
        seen.append(item)
        if isinstance(item, AccessObservation) and item.kind == "opened":
            release.wait(30)

    health: list[object] = []
    sensor = AccessSensor(cache, stuck_sink, health.append)
    sensor.start()
    try:
        sensor.protect([str(model)])
        first = subprocess.run([CAT, str(model)], capture_output=True, timeout=30)  # answered, then we hang
        assert first.stdout == content
        started = time.monotonic()
        second = subprocess.run([HEAD, "-c", str(len(content)), str(model)], capture_output=True, timeout=30)
        waited = time.monotonic() - started
        assert second.stdout == content and waited < 5, f"the second open waited {waited:.2f} s"
        release.set()
        wait_for(lambda: [o for o in seen if isinstance(o, AccessFailOpen)], timeout=10,
                 what="the opens let through reported")
        # let through, and still seen: the watchdog handed the event over to the sensor
        wait_for(lambda: [o for o in seen if isinstance(o, AccessObservation) and o.kind == "opened"
                          and o.process.executable == HEAD], timeout=10, what="head's open recorded")
    finally:
        release.set()
        sensor.stop()
