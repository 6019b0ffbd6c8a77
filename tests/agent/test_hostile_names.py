"""Names are data, never markup: a model whose file name holds a newline and terminal escape sequences is
inventoried, copied and alerted on like any other, every listing shows the name escaped (no forged line, no
repainted terminal), and the records keep its exact bytes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.cli.helpers import QUIET_WORLD, run_cli, wait_for, write_config
from tests.agent.cli.test_agent_e2e import RunningAgent
from tests.conftest import write_safetensors

pytestmark = [pytest.mark.e2e]

HOSTILE = b"w\n\x1b[2J\x1b[31mrm -rf ~\x07\x7f\xc2\x9b.safetensors"  # newline, CSI clear, bell, DEL, C1 CSI


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[RunningAgent, Path]]:
    models, elsewhere, data = (tmp_path / name for name in ("models", "elsewhere", "data"))
    for folder in (models, elsewhere, data):
        folder.mkdir()
    plain = write_safetensors(models / "llama" / "model.safetensors", rows=512)
    hostile = os.fsencode(models / "llama") + b"/" + HOSTILE
    os.rename(plain, hostile)
    config = write_config(tmp_path / "config.toml", data_dir=data, protected=[models], watched=[elsewhere])
    with config.open("a") as handle:
        handle.write(QUIET_WORLD)
    running = RunningAgent(config, dict(os.environ))
    try:
        wait_for(lambda: "scan-finished" in running.actions(), timeout=60, what="the initial inventory")
        yield running, elsewhere
    finally:
        if running.process.poll() is None:
            assert running.stop() == 0


def no_control_characters(text: str) -> None:
    """Only newlines and tabs of the listing itself; the name's newline did not forge a line of its own."""
    assert not [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f]
    for line in text.split("\n"):
        assert "rm -rf ~" not in line or "w\\x0a\\x1b[2J" in line, line


def test_a_hostile_name_is_kept_exactly_and_shown_escaped(agent: tuple[RunningAgent, Path]) -> None:
    running, elsewhere = agent
    (model,) = running.records("models")
    (shown,) = model["paths"]
    assert shown.endswith("/w\\x0a\\x1b[2J\\x1b[31mrm -rf ~\\x07\\x7f\\u009b.safetensors")
    (discovered,) = [e for e in running.records("events") if e["event"]["action"] == "model-discovered"]
    raw = bytes.fromhex(discovered["file"]["path_hex"])  # the exact bytes, whatever the display shows
    assert raw.endswith(b"/" + HOSTILE) and discovered["file"]["path"] == shown

    copy = os.fsencode(elsewhere) + b"/" + HOSTILE
    shutil.copyfile(raw, copy)
    (alert,) = wait_for(lambda: [a for a in running.records("alerts") if a["rule"] == "model-copy"],
                        timeout=30, what="the copy alert")
    assert alert["destination"]["path"] == os.fsdecode(os.fsencode(elsewhere)) + shown[shown.rindex("/"):]
    created = wait_for(lambda: [e for e in running.records("events") if e["event"]["action"] == "model-created"],
                       timeout=30, what="the copy's event")
    assert bytes.fromhex(created[0]["file"]["path_hex"]) == copy

    for command in ("models", "alerts", "events"):
        shown = run_cli(command, "--config", str(running.config), env=running.env)
        assert shown.returncode in (0, 1), shown.stderr
        no_control_characters(shown.stdout)
        assert "\\x1b[2J" in shown.stdout
