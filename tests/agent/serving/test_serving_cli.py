"""`weightwarden status` and `weightwarden models` print the serving section the sensor writes
(agent/serving/section.py row_of -> the status snapshot), and say when nothing is known."""

from __future__ import annotations

from pathlib import Path

from tests.agent.cli.helpers import run_cli
from tests.agent.sensors.test_status_cmd import snapshot, write
from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.serving.observations import ServedModel, Server
from weightwarden.agent.serving.section import PeerRow, row_of


def _serving() -> dict[str, object]:
    server = Server(1, "0.0.0.0", 11434, "all-interfaces", 70, ProcessInfo(70, name="ollama", user="bo"),
                    (ServedModel("llama-private", "/home/bo/m/model.safetensors", True),), "ollama", False, "GET ok")
    return {"servers": [row_of(server, [PeerRow("10.9.0.2", 3000, 1, 300000, 6 << 20)]).to_dict()]}


def test_status_and_models_show_the_servers(tmp_path: Path) -> None:
    env = write(tmp_path, {**snapshot(), "serving": _serving()})
    status = run_cli("status", env=env)
    assert status.returncode == 0, status.stderr
    assert ("  llama-private: ollama (pid 70, bo) on 0.0.0.0:11434; reach all-interfaces; ollama; NO authentication"
            "  <- EXPOSED") in status.stdout
    assert "    peer 10.9.0.2: 3000 connections (1 open)" in status.stdout
    models = run_cli("models", env=env)
    assert models.returncode == 0 and "serving:   1 servers of protected models" in models.stdout


def test_models_says_when_serving_is_not_known(tmp_path: Path) -> None:
    env = write(tmp_path, snapshot(age_seconds=60))  # the agent stopped a minute ago
    assert "serving:   not known (the agent is not running" in run_cli("models", env=env).stdout
    env = write(tmp_path / "user", snapshot())  # running, without the serving sensor (user mode)
    assert "serving:   not watched" in run_cli("models", env=env).stdout
