"""Acceptance (issue 17): an agent that dies while an open waits on its answer leaves no opener hung.

Its own module: a second system agent beside test_enforcement.py's would enforce the same policy files on
the first one's hashing (on a workstation there is one agent).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import pytest

from tests.agent.test_enforcement import CAT, POLICY_DIR, _denied_open, _open_to_all
from tests.agent.test_installed_scope import InstalledAgent, Person, owned_model, people  # noqa: F401
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def test_an_agent_killed_during_an_open_leaves_no_opener_hung(people: tuple[Person, Person],  # noqa: F811
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    ana, bo = people
    model = owned_model(ana, "models/held/model.safetensors", seed=73)
    _open_to_all(ana, model)
    content = model.read_bytes()
    policy_file = POLICY_DIR / f"91-test-{ana.name}.yml"
    policy_file.write_text(f"id: test-held-{ana.name}\napplies_to:\n  paths: [\"{model.parent}/**\"]\n"
                           f"mode: enforce\nallow:\n  - users: [{ana.name}]\n")
    agent = InstalledAgent(tmp_path_factory.mktemp("killed") / "data")
    opener: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: any(str(model) in m.get("paths", []) for m in agent.models()), timeout=120,
                 what="the model inventoried")
        wait_for(lambda: _denied_open(bo, model), timeout=15, what="the policy in force")
        os.kill(agent.process.pid, signal.SIGSTOP)  # the agent cannot answer: the next open waits on it
        wait_for(lambda: _stopped(agent.process.pid), timeout=10, what="every thread of the agent stopped")
        opener = bo.start(CAT, str(model))
        wait_for(lambda: _waits_in_open(opener.pid), timeout=10, what="cat's open waiting on the stopped agent")
        assert opener.poll() is None
        os.kill(agent.process.pid, signal.SIGKILL)
        out, _ = opener.communicate(timeout=10)  # the kernel answers for a dead agent: the open goes through
        assert opener.returncode == 0 and out == content
    finally:
        if opener is not None and opener.poll() is None:
            opener.kill()
        if opener is not None:
            opener.communicate(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.kill(agent.process.pid, signal.SIGKILL)
        agent.process.wait(timeout=10)
        policy_file.unlink(missing_ok=True)


def _state(stat_path: str) -> str | None:
    try:
        with open(stat_path) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _stopped(pid: int) -> bool:
    """Every thread of `pid` stopped by its SIGSTOP (none left that could still answer an open)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    return all(_state(f"/proc/{pid}/task/{tid}/stat") == "T" for tid in tasks)


def _waits_in_open(pid: int) -> bool:
    """cat (setpriv exec'd it) asleep inside openat(2), in fanotify's wait: its open waits on the agent."""
    try:
        if os.readlink(f"/proc/{pid}/exe") != CAT:
            return False
        with open(f"/proc/{pid}/syscall") as handle:
            call = handle.read().split()
        with open(f"/proc/{pid}/wchan") as handle:
            where = handle.read()
    except OSError:
        return False
    in_open = (bool(call) and call[0] in ("257", "56")) or "fanotify" in where
    return in_open and _state(f"/proc/{pid}/stat") in ("S", "D")
