"""Grants, revokes, expiries and requests made by `weightwarden access` become chained records of the agent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agent.cli.helpers import run_cli, write_config
from tests.agent.in_thread import agent_in_thread
from tests.waiting import wait_for
from weightwarden.agent.access import grants
from weightwarden.agent.config import load_config
from weightwarden.agent.store import Store


@pytest.mark.skipif(os.geteuid() != 0, reason="only root grants")
def test_the_running_agent_stores_what_the_access_commands_did(tmp_path: Path) -> None:
    models, data = tmp_path / "models", tmp_path / "data"
    models.mkdir()
    data.mkdir()
    config_file = write_config(tmp_path / "config.toml", data_dir=data, protected=[models], watched=[])
    config = load_config(config_file, mode="user")
    with agent_in_thread(config):
        made = run_cli("access", "grant", "root", "llama", "--program", "/usr/bin/python3", "--for", "1s",
                       "--justification", "eval", "--config", str(config_file), "--mode", "user")
        assert made.returncode == 0, made.stderr
        grant_id = made.stdout.split()[1].rstrip(":")
        glass = run_cli("access", "break-glass", "--reason", "incident 7", "--for", "10m",
                        "--config", str(config_file), "--mode", "user")
        assert glass.returncode == 0, glass.stderr
        store = Store(config.database_path, read_only=True)
        try:
            def actions() -> list[str]:
                return [e["event"]["action"] for e in store.events() if e["event"]["action"].startswith("access-")]

            # the 1 s grant ends; the agent sweeps it and records the expiry
            wait_for(lambda: "access-grant-expired" in actions(), timeout=30, what="the expiry record")
            assert actions() == ["access-granted", "access-break-glass", "access-grant-expired"]
            granted = next(e for e in store.events() if e["event"]["action"] == "access-granted")
            assert granted["details"]["grant"]["id"] == grant_id and granted["model"] == "llama"
        finally:
            store.close()
    assert grants.GrantBook(str(data)).grants() == ()


def test_access_check_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("id: x-y\napplies_to: {models: [m]}\nmode: strict\nallow: []\n")
    result = run_cli("access", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:3: policy x-y: unknown mode 'strict'" in result.stdout
    good = tmp_path / "good.yml"
    good.write_text("id: x-y\napplies_to: {models: [m]}\nallow: []\n")
    assert run_cli("access", "check", str(good)).returncode == 0


def test_a_request_without_the_request_folder_is_a_clear_error(tmp_path: Path) -> None:
    config_file = write_config(tmp_path / "config.toml", data_dir=tmp_path / "data", protected=[tmp_path],
                               watched=[])
    result = run_cli("access", "request", "llama", "--justification", "eval", "--config", str(config_file),
                     "--mode", "user")
    assert result.returncode == 2 and "ask an admin" in result.stderr
