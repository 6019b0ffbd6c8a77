"""End to end: `weightwarden agent` as a subprocess finds a model in a folder nobody configured (user mode:
the user's home), `models --json` says discovery found it and why it is protected, `status` shows the
progress, and a restart continues from the saved state."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import json_lines, run_cli, wait_for
from tests.agent.cli.test_agent_e2e import RunningAgent
from tests.conftest import write_safetensors

pytestmark = pytest.mark.e2e


def models(agent: RunningAgent) -> dict[str, dict[str, Any]]:
    result = run_cli("models", "--json", "--config", str(agent.config), "--mode", "user", env=agent.env)
    return {m["name"]: m for m in json_lines(result.stdout)} if result.returncode == 0 else {}


def status(agent: RunningAgent) -> dict[str, Any]:
    result = run_cli("status", "--json", "--config", str(agent.config), "--mode", "user", env=agent.env)
    return json.loads(result.stdout) if result.stdout.strip() else {}


def test_a_model_in_a_folder_nobody_configured_is_inventoried_by_discovery(tmp_path: Path,
                                                                          isolated_home: Path) -> None:
    for folder in ("models", "elsewhere", "data"):
        (tmp_path / folder).mkdir()
    checkpoint = write_safetensors(isolated_home / "code" / "proj" / "out" / "model.safetensors", seed=31)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[agent]\nmode = "user"\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[inventory]\nroots = ["{tmp_path / "models"}"]\ndiscover_delay_seconds = 0\n\n'
        f'[watch]\nroots = ["{tmp_path / "elsewhere"}"]\nsettle_seconds = 0.2\n\n'
        "[store]\nflush_seconds = 0.05\n\n[sensors]\nstatus_seconds = 0.5\n")
    agent = RunningAgent(config, dict(os.environ))
    try:
        found = wait_for(lambda: models(agent).get("out"), timeout=60, what="discovery to inventory the model")
        assert found["paths"] == [str(checkpoint)] and found["protected"] is True
        assert found["found_by"] == [f"discovery pass 1 under {isolated_home}"]
        assert found["protect_reasons"] == ["private (all-private policy)"]
        progress = wait_for(lambda: (status(agent).get("discovery") or {}).get("passes_done"), timeout=30,
                            what="the status to show a finished pass")
        assert progress == 1
        shown = status(agent)["discovery"]
        assert shown["models_found"] == 1 and shown["priority"]["idle"] is True
        assert any(s["name"] == "discovery" for s in status(agent)["sensors"])
        text = run_cli("status", "--config", str(config), "--mode", "user").stdout
        assert "discovery: idle until the next pass; 1 passes done\n  pass 1: " in text, text
        assert agent.stop() == 0
        finished = [e for e in agent.records("events") if e["event"]["action"] == "discovery-finished"]
        assert len(finished) == 1 and finished[0]["details"]["models"] == 1
    finally:
        if agent.process.poll() is None:
            agent.stop(signal.SIGKILL)
