"""End to end: the agent as a subprocess on temporary roots, a real model copied with `cp`, the alert read
back through `weightwarden alerts --json`, and a clean, flushed shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import QUIET_WORLD, WEIGHTWARDEN, json_lines, run_cli, wait_for, write_config
from tests.conftest import write_safetensors

pytestmark = pytest.mark.e2e


class RunningAgent:
    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.log = config.with_suffix(".log")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([WEIGHTWARDEN, "agent", "--config", str(config)], env=env,
                                            stdout=subprocess.DEVNULL, stderr=log)

    def records(self, kind: str) -> list[dict[str, Any]]:
        result = run_cli(kind, "--json", "--config", str(self.config), env=self.env)
        return json_lines(result.stdout) if result.returncode in (0, 1) else []

    def actions(self) -> list[str]:
        return [e["event"]["action"] for e in self.records("events")]

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=60)


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("models", "elsewhere", "data")}
    for path in paths.values():
        path.mkdir()
    paths["config"] = write_config(tmp_path / "config.toml", data_dir=paths["data"],
                                   protected=[paths["models"]], watched=[paths["elsewhere"]])
    with paths["config"].open("a") as config:  # see QUIET_WORLD
        config.write(QUIET_WORLD)
    return paths


@pytest.fixture
def agent(layout: dict[str, Path]) -> Iterator[RunningAgent]:
    write_safetensors(layout["models"] / "llama-7b" / "model.safetensors", rows=2048)
    running = RunningAgent(layout["config"], dict(os.environ))
    try:
        wait_for(lambda: "scan-finished" in running.actions(), timeout=60, what="the initial inventory")
        yield running
    finally:
        if running.process.poll() is None:
            running.stop(signal.SIGKILL)


def copy_alerts(agent: RunningAgent, target: Path) -> list[dict[str, Any]]:
    return [a for a in agent.records("alerts") if a["rule"] == "model-copy" and str(target) in a["paths"]]


def test_copy_with_cp_raises_model_copy_alert(agent: RunningAgent, layout: dict[str, Path]) -> None:
    source = layout["models"] / "llama-7b" / "model.safetensors"
    events = agent.records("events")
    assert any(e["event"]["action"] == "model-discovered" and e["file"]["path"] == str(source) for e in events)
    target = layout["elsewhere"] / "innocent.bin"
    subprocess.run(["cp", str(source), str(target)], check=True)
    (alert,) = wait_for(lambda: copy_alerts(agent, target), timeout=30, what="the model-copy alert")
    assert alert["model"] == "llama-7b"
    assert alert["paths"] == [str(source), str(target)]
    assert alert["evidence"]["source_path"] == str(source)
    assert alert["destination"]["path"] == str(target)
    assert 0 <= alert["severity"] <= 10 and alert["time"].endswith("Z")
    assert agent.stop() == 0
    actions = agent.actions()
    assert actions[-1] == "agent-stopped"
    created = [e for e in agent.records("events") if e["event"]["action"] == "model-created"]
    assert created and created[-1]["details"]["copy_of"] == str(source)


def test_copy_inside_the_protected_root_and_moves_and_deletes(agent: RunningAgent, layout: dict[str, Path]) -> None:
    source = layout["models"] / "llama-7b" / "model.safetensors"
    backup = layout["models"] / "backup"
    backup.mkdir()
    copy = backup / "weights"
    subprocess.run(["cp", str(source), str(copy)], check=True)
    wait_for(lambda: copy_alerts(agent, copy), timeout=30, what="an alert for a copy inside the root")
    moved = backup / "renamed.safetensors"
    copy.rename(moved)
    wait_for(lambda: "model-moved" in agent.actions(), timeout=30, what="the move event")
    moved.unlink()
    wait_for(lambda: "model-deleted" in agent.actions(), timeout=30, what="the delete event")
    assert len(copy_alerts(agent, moved)) == 0  # a rename is not a new copy
    assert agent.stop(signal.SIGINT) == 0


def test_noise_is_not_alerted_and_state_survives_restart(agent: RunningAgent, layout: dict[str, Path]) -> None:
    for i in range(30):
        (layout["elsewhere"] / f"file{i}.txt").write_text("x" * i)
    write_safetensors(layout["elsewhere"] / "other-model.safetensors", seed=42)
    wait_for(lambda: any(e["event"]["action"] == "model-created" for e in agent.records("events")),
             timeout=30, what="the unrelated model to be recorded")
    assert agent.records("alerts") == []
    assert agent.stop() == 0
    # a copy made while the agent was down is found at the next start
    source = layout["models"] / "llama-7b" / "model.safetensors"
    target = layout["elsewhere"] / "while-away.safetensors"
    subprocess.run(["cp", str(source), str(target)], check=True)
    again = RunningAgent(layout["config"], agent.env)
    try:
        wait_for(lambda: copy_alerts(again, target), timeout=60, what="the copy made while the agent was down")
    finally:
        assert again.stop() == 0


def test_agent_carries_on_through_hostile_files(agent: RunningAgent, layout: dict[str, Path]) -> None:
    """A FIFO, a symlink loop, a non-UTF-8 name and a 1 TB sparse file appear under a watched root: the
    agent records what it can, blocks on nothing, and still catches the next copy."""
    elsewhere = layout["elsewhere"]
    os.mkfifo(elsewhere / "model.safetensors.pipe")
    (elsewhere / "loop").symlink_to(elsewhere / "loop")
    with open(elsewhere / "huge.safetensors", "wb") as sparse:
        sparse.truncate(1 << 40)
    odd = Path(os.fsdecode(os.fsencode(elsewhere) + b"/caf\xe9.safetensors"))
    write_safetensors(odd, seed=77)
    wait_for(lambda: any(e["event"]["action"] == "model-created" and e["file"]["path"].endswith("caf\\xe9.safetensors")
                         for e in agent.records("events")), timeout=30, what="the non-UTF-8 model to be recorded")
    source = layout["models"] / "llama-7b" / "model.safetensors"
    target = elsewhere / "after-the-mess.bin"
    subprocess.run(["cp", str(source), str(target)], check=True)
    wait_for(lambda: copy_alerts(agent, target), timeout=30, what="the copy alert after the hostile files")
    assert agent.process.poll() is None
    assert agent.stop() == 0


def test_a_clone_of_many_folders_adds_a_handful_of_events(agent: RunningAgent, layout: dict[str, Path],
                                                          tmp_path: Path) -> None:
    """A readable log: the rescans that follow 300 new directories are summed up in one scan-finished, not
    one each; what a clone holds besides (a model among its files) is still recorded as found."""
    source = tmp_path / "repo"
    for folder in range(300):
        (source / f"pkg{folder:03d}").mkdir(parents=True)
        for name in range(10):
            (source / f"pkg{folder:03d}" / f"m{name}.py").write_text(f"VALUE = {folder * 10 + name}\n")
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-C", str(source)]
    subprocess.run(["git", "init", "-q", str(source)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "many folders"], check=True)
    before = len(agent.records("events"))
    clone = layout["elsewhere"] / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(source), str(clone)], check=True)

    def summary() -> list[dict[str, Any]]:
        return [e for e in agent.records("events")[before:] if e["event"]["action"] == "scan-finished"
                and e["details"].get("reason") == "new directory"]

    (burst,) = wait_for(summary, timeout=60, what="the one summary of the clone's rescans")
    assert burst["details"]["directories"] >= 1 and burst["details"]["files"] >= 1

    def about_the_clone(event: dict[str, Any]) -> bool:  # not the machine's other activity (mounts...)
        places = [(event.get("file") or {}).get("path") or "", *event["details"].get("roots", [])]
        return any(place.startswith(str(layout["elsewhere"])) for place in places)

    added = [e for e in agent.records("events")[before:] if about_the_clone(e)]
    assert len(added) <= 5, [e["message"] for e in added]
