"""The agent as a subprocess with two destinations: heartbeats and signed checkpoints are forwarded,
`sync status` and `sync test` report per destination, and the shutdown checkpoint is delivered and verifies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import WEIGHTWARDEN
from tests.agent.forward.conftest import wait_for
from tests.agent.forward.receivers import free_port
from weightwarden.agent.cli.main import main

pytestmark = pytest.mark.e2e


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().out


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()[:-1] + path.read_text().splitlines()[-1:]
            if line.strip()]


def test_agent_forwards_heartbeats_and_checkpoints_and_reports_sync_status(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "watched").mkdir()
    out = tmp_path / "out" / "ecs.jsonl"
    config = tmp_path / "config.toml"
    config.write_text(f"""[agent]
data_dir = "{tmp_path / 'data'}"
heartbeat_seconds = 0.5
checkpoint_seconds = 1
[inventory]
roots = ["{tmp_path / 'models'}"]
[watch]
roots = ["{tmp_path / 'watched'}"]
[store]
flush_seconds = 0.05
[forward.local]
type = "file"
path = "{out}"
[forward.down]
type = "syslog"
transport = "tcp"
address = "127.0.0.1"
port = {free_port()}
retry_initial_seconds = 0.1
retry_max_seconds = 0.5
timeout_seconds = 2
""")
    with (tmp_path / "agent.log").open("ab") as log:
        # PYTHONFAULTHANDLER: if shutdown ever hangs, SIGABRT below dumps every thread's stack into agent.log.
        agent = subprocess.Popen([WEIGHTWARDEN, "agent", "--config", str(config)], stdout=subprocess.DEVNULL,
                                 stderr=log, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        def heartbeat_with_backlog() -> dict[str, Any] | None:
            return next((d for d in lines(out) if d["event"]["action"] == "heartbeat"
                         and d["weightwarden"]["details"]["backlog"].get("down", 0) > 0), None)

        beat = wait_for(heartbeat_with_backlog, timeout=30, what="a forwarded heartbeat reporting a backlog")
        details = beat["weightwarden"]["details"]
        assert details["coverage"] in ("full", "reduced") and details["backlog"]["local"] >= 0
        assert "connect" in details["forward_errors"]["down"]
        wait_for(lambda: any(d["event"]["action"] == "chain-checkpoint" for d in lines(out)), timeout=30,
                 what="a forwarded checkpoint")
        code, text = cli(capsys, "sync", "status", "--json", "--config", str(config))
        status = {row["destination"]: row for row in map(json.loads, text.splitlines())}
        assert code == 0 and status["down"]["backlog"] > 0 and "connect" in status["down"]["last_error"]
        assert status["local"]["last_delivered_sequence"] >= 1 and status["local"]["last_error"] is None
        assert status["local"]["last_delivered_id"] is not None
        assert cli(capsys, "sync", "test", "local", "--config", str(config))[0] == 0
        code, text = cli(capsys, "sync", "test", "down", "--config", str(config))
        assert code == 1 and "FAILED" in text
        code, text = cli(capsys, "sync", "status", "--config", str(config))
        assert text.splitlines()[0].split() == ["DEST", "TYPE", "DELIVERED", "BACKLOG", "DROPPED", "DEAD", "LAST",
                                                "ERROR"]
    finally:
        agent.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        try:
            code = agent.wait(timeout=90)
        except subprocess.TimeoutExpired:
            agent.send_signal(signal.SIGABRT)
            agent.wait(timeout=30)
            raise AssertionError("the agent did not stop within 90 s of SIGTERM; its threads:\n"
                                 + (tmp_path / "agent.log").read_text()[-6000:]) from None
        assert code == 0
        assert time.monotonic() - stopping < 30, "a clean shutdown takes seconds, not minutes"
    forwarded = lines(out)
    assert forwarded[-1]["event"]["action"] == "agent-stopped"  # delivered, carrying the shutdown signature
    assert forwarded[-1]["weightwarden"]["details"]["checkpoint"]["reason"] == "shutdown"
    code, text = cli(capsys, "verify", "--config", str(config))
    assert code == 0 and text.startswith("OK:"), text
