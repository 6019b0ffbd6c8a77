"""The agent as a subprocess with two destinations: heartbeats and signed checkpoints are forwarded,
`sync status` and `sync test` report per destination, and the shutdown checkpoint is delivered and verifies."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.agent.forward.conftest import wait_for
from tests.agent.forward.running_agent import start_agent, stop_agent, write_agent_config
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
    config = write_agent_config(tmp_path, tmp_path / "models", tmp_path / "watched", f"""[forward.local]
type = "file"
path = "{out}"
""")
    agent = start_agent(config, tmp_path / "agent.log")
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
        stopping = time.monotonic()
        code = stop_agent(agent, tmp_path / "agent.log")
        assert code == 0
        assert time.monotonic() - stopping < 30, "a clean shutdown takes seconds, not minutes"
    forwarded = lines(out)
    assert forwarded[-1]["event"]["action"] == "agent-stopped"  # delivered, carrying the shutdown signature
    assert forwarded[-1]["weightwarden"]["details"]["checkpoint"]["reason"] == "shutdown"
    code, text = cli(capsys, "verify", "--config", str(config))
    assert code == 0 and text.startswith("OK:"), text
