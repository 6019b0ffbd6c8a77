"""A copy whose mtime is set while the agent reads it (`cp -p`, `rsync -a`, `mv` across filesystems set it
after closing the file, and attribute changes raise no file event) is examined again once it settles:
it still enters the inventory, with its final mtime, and raises exactly one copy alert."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.cli.helpers import write_config
from tests.agent.in_thread import agent_in_thread
from tests.conftest import write_safetensors
from tests.waiting import wait_for
from weightwarden.agent.config import load_config
from weightwarden.agent.events import Alert, ModelFile, ProcessInfo
from weightwarden.agent.service import Agent


@pytest.fixture
def agent_and_folders(tmp_path: Path) -> Iterator[tuple[Agent, Path, Path]]:
    models, elsewhere, data = tmp_path / "models", tmp_path / "elsewhere", tmp_path / "data"
    elsewhere.mkdir()
    data.mkdir()
    model = write_safetensors(models / "llama" / "model.safetensors", seed=7)
    config = load_config(write_config(tmp_path / "config.toml", data_dir=data, protected=[models],
                                      watched=[elsewhere], settle=0.05), mode="user")
    with agent_in_thread(config) as agent:
        wait_for(lambda: agent.inventory.get(str(model)), timeout=30, what="the protected model")
        yield agent, model, elsewhere


def test_a_copy_whose_mtime_changes_while_it_is_read_is_examined_again(
        agent_and_folders: tuple[Agent, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    agent, model, elsewhere = agent_and_folders
    target = elsewhere / "weights.safetensors"
    hand_over = agent.files.on_identified  # the examining thread: the file is a model, not yet hashed
    judge_copy = agent.files.upkeep.copy_alert  # the dispatcher: is it a copy?
    looks: list[int] = []
    changed: list[str] = []

    def identified_while_cp_sets_the_mtime(found: ModelFile) -> None:
        if not changed and found.path == str(target):  # what `cp -p` does after close, during the first look
            stat = model.stat()
            os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            changed.append(found.path)
        hand_over(found)

    def copy_alert_counted(found: ModelFile, writer: ProcessInfo | None = None) -> Alert | None:
        looks.append(found.mtime_ns)
        return judge_copy(found, writer)

    monkeypatch.setattr(agent.files, "on_identified", identified_while_cp_sets_the_mtime)
    monkeypatch.setattr(agent.files.upkeep, "copy_alert", copy_alert_counted)
    shutil.copyfile(model, target)

    copied = wait_for(lambda: agent.inventory.get(str(target)), timeout=20, what="the copy in the inventory")
    assert copied.mtime_ns == model.stat().st_mtime_ns  # recorded as it ended up, not as first seen
    agent.writer.flush()
    alerts = [a for a in agent.store.alerts() if a["rule"] == "model-copy" and str(target) in a["paths"]]
    assert len(alerts) == 1 and str(model) in alerts[0]["paths"]
    assert len(looks) == 1  # the second look reused the alert the first one raised
