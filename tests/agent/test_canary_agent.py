"""A running agent (system mode) and a canary that is renamed, then moved into another folder of the same
filesystem with `mv`, then read with `cat` by a user who is not root: the alert names the canary where it
is now and the reader; `canary list` says where it went."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import run_cli, wait_for, write_config
from tests.agent.sensors.conftest import require_fanotify, require_proc_connector
from tests.agent.sensors.test_agent_activity import Agent, status
from weightwarden.agent import canary

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder anyone may walk into (pytest's own are root's alone), as a shared models folder is."""
    with tempfile.TemporaryDirectory(prefix="ww-canary-") as folder:
        os.chmod(folder, 0o755)
        yield Path(folder)


@pytest.fixture
def running(shared: Path) -> Iterator[tuple[Agent, dict[str, Path]]]:
    if os.geteuid() != 0:
        pytest.skip("system mode needs root")
    require_fanotify()
    require_proc_connector()
    nobody = pwd.getpwnam("nobody")
    tmp_path = shared
    paths = {name: tmp_path / name for name in ("models", "elsewhere", "data")}
    for path in paths.values():
        path.mkdir()
    (paths["models"] / "archive").mkdir()
    env = {"WEIGHTWARDEN_DATA_DIR": str(paths["data"]), "SUDO_UID": str(nobody.pw_uid),
           "SUDO_GID": str(nobody.pw_gid), "SUDO_USER": "nobody"}
    planted = run_cli("canary", "plant", str(paths["models"] / "internal-7b" / "model.safetensors"),
                      env={**os.environ, **env})
    assert planted.returncode == 0, planted.stderr
    paths["canary"] = paths["models"] / "internal-7b" / "model.safetensors"
    paths["config"] = write_config(tmp_path / "config.toml", data_dir=paths["data"], protected=[paths["models"]],
                                   watched=[paths["elsewhere"]])
    with paths["config"].open("a") as config:
        config.write("\n[sensors]\nstatus_seconds = 0.5\nnetwork_poll_seconds = 0.5\nfile_marks = false\n")
    agent = Agent(paths["config"], dict(os.environ))
    try:
        wait_for(lambda: "scan-finished" in agent.actions(), timeout=60, what="the initial inventory")
        wait_for(lambda: _marked(paths, 1), timeout=60, what="the canary to be marked")
        yield agent, paths
    finally:
        if agent.process.poll() is None:
            agent.stop(signal.SIGKILL)


def _marked(paths: dict[str, Path], count: int) -> bool:
    sensors = status(paths)[1].get("sensors", [])
    return any(s["name"] == "access" and f"{count} files marked" in s["message"] for s in sensors)


def _moved_to(agent: Agent, path: Path) -> bool:
    return any(e["event"]["action"] == "model-moved" and e["file"]["path"] == str(path)
               for e in agent.records("events"))


def _canary_alerts(agent: Agent, path: Path) -> list[dict[str, Any]]:
    return [a for a in agent.records("alerts") if a["rule"] == "canary-model-accessed" and str(path) in a["paths"]]


def _cat_as_nobody(path: Path) -> None:
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "cat", str(path)],
                   check=True, stdout=subprocess.DEVNULL, timeout=60, start_new_session=True)


def test_a_renamed_then_moved_canary_read_by_another_user_alerts(running: tuple[Agent, dict[str, Path]]) -> None:
    agent, paths = running
    planted = paths["canary"]
    assert planted.stat().st_uid == pwd.getpwnam("nobody").pw_uid  # planted "with sudo" by nobody

    renamed = planted.with_name("consolidated.safetensors")
    os.rename(planted, renamed)
    wait_for(lambda: _moved_to(agent, renamed), timeout=30, what="the inventory to follow the rename")
    moved = paths["models"] / "archive" / "old-7b.safetensors"
    subprocess.run(["mv", str(renamed), str(moved)], check=True, timeout=60)
    wait_for(lambda: _moved_to(agent, moved), timeout=30, what="the inventory to follow the mv")
    wait_for(lambda: _marked(paths, 1), timeout=30, what="the moved canary to stay marked")

    _cat_as_nobody(moved)
    (alert, *_) = wait_for(lambda: _canary_alerts(agent, moved), timeout=30, what="the canary alert")
    assert alert["severity"] == 10 and alert["evidence"]["canary"] is True
    assert alert["process"]["name"] == "cat" and alert["process"]["user"] == "nobody"

    listing = run_cli("canary", "list", "--config", str(paths["config"]))
    assert listing.returncode == 0, listing.stderr
    assert "moved" in listing.stdout and str(moved) in listing.stdout
    (entry,) = canary.load_registry(str(paths["data"]))
    assert entry.path == str(moved) and entry.owner == "nobody"  # the registry follows it too
