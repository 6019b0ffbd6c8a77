"""The command line as users run it: output contracts, exit codes, one-line errors."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.cli.helpers import json_lines, run_cli
from tests.conftest import write_gguf, write_safetensors
from weightwarden.agent.alert_evidence import CopyEvidence
from weightwarden.agent.events import Action, Alert, Category, Event
from weightwarden.agent.store import Store


@pytest.fixture
def data_env(tmp_path: Path) -> dict[str, str]:
    return {"WEIGHTWARDEN_DATA_DIR": str(tmp_path / "data")}


def test_scan_json_contract(tmp_path: Path, data_env: dict[str, str]) -> None:
    st = write_safetensors(tmp_path / "tree" / "bert" / "model.safetensors")
    write_gguf(tmp_path / "tree" / "weights.bin")
    (tmp_path / "tree" / "readme.txt").write_text("not a model")
    result = run_cli("scan", str(tmp_path / "tree"), "--json", env=data_env)
    assert result.returncode == 0, result.stderr
    rows = {Path(r["path"]).name: r for r in json_lines(result.stdout)}
    assert set(rows) == {"model.safetensors", "weights.bin"}
    row = rows["model.safetensors"]
    assert {"path", "format", "size", "sha256", "quick_fingerprint", "model"} <= set(row)
    assert row["sha256"] == hashlib.sha256(st.read_bytes()).hexdigest()
    assert (row["format"], row["model"], row["size"]) == ("safetensors", "bert", st.stat().st_size)
    assert rows["weights.bin"]["format"] == "gguf"
    assert "\r" not in result.stderr  # no progress line when not on a terminal


def test_scan_table_and_second_run_uses_the_cache(tmp_path: Path, data_env: dict[str, str]) -> None:
    write_safetensors(tmp_path / "m" / "model.safetensors")
    first = run_cli("scan", str(tmp_path / "m"), env=data_env)
    assert first.returncode == 0
    assert "safetensors" in first.stdout and "model.safetensors" in first.stdout
    second = run_cli("scan", str(tmp_path / "m"), env=data_env)
    assert "1 unchanged since last look" in second.stderr


def test_scan_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("scan", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("weightwarden: error: no such file or directory")
    assert "Traceback" not in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    result = run_cli("alerts", "--bogus")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_scan_reports_problems_and_carries_on(tmp_path: Path, data_env: dict[str, str]) -> None:
    tree = tmp_path / "tree"
    write_safetensors(tree / "ok.safetensors")
    os.mkfifo(tree / "model.safetensors.fifo")
    (tree / "loop").symlink_to(tree / "loop")
    raw = os.fsencode(tree) + b"/\xff\xfe.safetensors"
    write_safetensors(Path(os.fsdecode(raw)), seed=9)
    result = run_cli("scan", str(tree), "--json", env=data_env, timeout=60)
    assert result.returncode == 0, result.stderr
    names = sorted(Path(r["path"]).name for r in json_lines(result.stdout))
    assert names == ["\\xff\\xfe.safetensors", "ok.safetensors"]


def _seed_store(data_dir: Path) -> None:
    store = Store(data_dir / "weightwarden.db")
    store.write([
        Event(Action.MODEL_CREATED, Category.FILE, "created a"),
        Alert(rule_id="model-copy", title="Copy of protected model m", severity=6, message="copy | of m",
              paths=("/a", "/tmp/b"), model="m",
              evidence=CopyEvidence(source_path="/a", copy_path="/tmp/b", matched_on="sha256")),
    ])
    store.close()


def test_alerts_json_and_exit_code(tmp_path: Path, data_env: dict[str, str]) -> None:
    _seed_store(tmp_path / "data")
    result = run_cli("alerts", "--json", env=data_env)
    assert result.returncode == 1  # findings
    (alert,) = json_lines(result.stdout)
    assert alert["rule"] == "model-copy" and alert["severity"] == 6 and alert["model"] == "m"
    assert alert["paths"] == ["/a", "/tmp/b"] and alert["evidence"] == {
        "source_path": "/a", "copy_path": "/tmp/b", "format": None, "size": None, "matched_on": "sha256",
        "quick_fingerprint": None, "sha256": None, "other_sources": []}
    assert alert["time"].endswith("Z") and len(alert["time"]) == len("2026-11-29T16:22:37.123Z")
    table = run_cli("alerts", env=data_env)
    assert "model-copy" in table.stdout and "copy | of m" in table.stdout
    assert run_cli("alerts", "--since", "2099-01-01T00:00:00Z", env=data_env).returncode == 0


def test_events_since_and_bad_since(tmp_path: Path, data_env: dict[str, str]) -> None:
    _seed_store(tmp_path / "data")
    result = run_cli("events", "--json", "--since", "1h", env=data_env)
    assert result.returncode == 0
    assert [e["event"]["action"] for e in json_lines(result.stdout)] == ["model-created"]
    bad = run_cli("events", "--since", "yesterday-ish", env=data_env)
    assert bad.returncode == 2 and "--since" in bad.stderr and "Traceback" not in bad.stderr


def test_alerts_without_a_database_says_so(tmp_path: Path, data_env: dict[str, str]) -> None:
    result = run_cli("alerts", env=data_env)
    assert result.returncode == 2 and "no database yet" in result.stderr


@pytest.fixture
def bad_config(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "config.toml"
    path.write_text('[scan]\nwindow_bytes = "big"\nworkerz = 3\n\n[agent]\nmode = "root"\n')
    yield path


def test_config_check_reports_every_error_with_file_and_line(bad_config: Path) -> None:
    result = run_cli("config", "check", str(bad_config))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(bad_config) + ":")]
    assert [line.split(":")[1] for line in lines[:3]] == ["2", "3", "6"]


def test_config_syntax_error_stops_the_agent_with_a_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[agent]\nmode = \n")
    result = run_cli("agent", "--config", str(path), timeout=60)
    assert result.returncode == 2
    assert f"{path}:2:" in result.stderr and "Traceback" not in result.stderr


def test_config_check_of_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(run_cli("config", "default").stdout)
    result = run_cli("config", "check", str(path))
    assert result.returncode == 0 and result.stdout.strip().endswith(": ok")


def test_console_scripts_are_installed() -> None:
    gui = Path(os.sys.executable).with_name("weightwarden-gui")
    assert gui.exists() and gui.stat().st_mode & stat.S_IXUSR
