"""`weightwarden status` reads the snapshot the agent writes (read-only) and says when it is stale."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from tests.agent.cli.helpers import run_cli
from weightwarden.agent.cli.status_cmd import STATUS_KEY, staleness
from weightwarden.agent.events import format_time, utc_now
from weightwarden.agent.sensors.base import SensorStatus
from weightwarden.agent.store import Store


def snapshot(age_seconds: float = 0.0, running: bool = True) -> dict[str, object]:
    return {"time": format_time(utc_now() - timedelta(seconds=age_seconds)), "pid": 4242, "mode": "system",
            "privilege": "root", "coverage": "reduced", "gaps": {"network": "sock_diag unavailable: test"},
            "running": running, "uptime_seconds": 12.0, "interval_seconds": 2.0, "protected_files": 3,
            "process_cache": 99,
            "sensors": [SensorStatus("access", "running", "fanotify", "root", "3 files marked", 10, 1.5, 2,
                                     0).to_dict()]}


def write(tmp_path: Path, value: dict[str, object] | None) -> dict[str, str]:
    store = Store(tmp_path / "data" / "weightwarden.db")
    if value is not None:
        store.set_state(STATUS_KEY, json.dumps(value))
    store.close()
    return {"WEIGHTWARDEN_DATA_DIR": str(tmp_path / "data")}


def test_fresh_status_table_and_json(tmp_path: Path) -> None:
    env = write(tmp_path, snapshot())
    table = run_cli("status", env=env)
    assert table.returncode == 0, table.stderr
    assert "running (pid 4242" in table.stdout and "coverage:  reduced" in table.stdout
    assert "reduced: network: sock_diag unavailable: test" in table.stdout
    line = next(line for line in table.stdout.splitlines() if line.startswith("access"))
    assert line.split()[:8] == ["access", "running", "fanotify", "root", "1.5", "10", "2", "0"]
    result = run_cli("status", "--json", env=env)
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["stale"] is False and data["sensors"][0]["drops"] == 2


def test_stale_or_stopped_or_missing_status_exits_1(tmp_path: Path) -> None:
    env = write(tmp_path, snapshot(age_seconds=60))
    result = run_cli("status", env=env)
    assert result.returncode == 1 and "stale" in result.stdout
    env = write(tmp_path, snapshot(running=False))
    assert "stopped" in run_cli("status", env=env).stdout
    env = write(tmp_path / "other", None)
    result = run_cli("status", env=env)
    assert result.returncode == 1 and "no status yet" in result.stdout


def test_staleness_rule() -> None:
    assert staleness(snapshot(age_seconds=5))[0] is False
    assert staleness(snapshot(age_seconds=11))[0] is True  # three intervals, at least 10 s
    assert staleness(snapshot(running=False))[0] is True
