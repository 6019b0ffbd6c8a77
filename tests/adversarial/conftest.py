"""A real log to attack: the real agent (a subprocess) protects a model, sees it copied with `cp`, takes an
admin's acknowledgement through its control socket, forwards everything to a JSON-lines file, signs its
chain every second and stops cleanly. Each test tampers with its own copy of that data directory.

The tamperer is root here, with write access to the database: in system mode the database is root's
(mode 0600 in a 0700 directory), so these attacks model an admin or an insider who got root; an ordinary
user cannot open it for writing at all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import QUIET_WORLD, WEIGHTWARDEN, json_lines, run_cli, wait_for
from tests.conftest import write_safetensors
from weightwarden.agent import control
from weightwarden.agent.keys import PUBLIC_KEY_NAME
from weightwarden.agent.store.chain import GENESIS, link

CHECKPOINT_SECONDS = 1.0
AGENT_NAME = "ww-adversarial"


def config_text(data: Path, root: Path, out: Path, extra: str = "") -> str:
    return (f'[agent]\ndata_dir = "{data}"\nname = "{AGENT_NAME}"\nheartbeat_seconds = 0.5\n'
            f"checkpoint_seconds = {CHECKPOINT_SECONDS}\n"
            f'[inventory]\nroots = ["{root / "models"}"]\n[watch]\nroots = ["{root / "elsewhere"}"]\n'
            f"settle_seconds = 0.2\n[store]\nflush_seconds = 0.05\n"
            f'[forward.siem]\ntype = "file"\nformat = "native"\npath = "{out}"\n{extra}{QUIET_WORLD}')


@dataclass
class Log:
    root: Path
    data: Path
    config: Path
    siem_copy: Path  # the JSON-lines file the agent forwarded to
    pinned_key: Path  # the public key as registered SIEM-side (outside the data directory)
    alert_id: str

    @property
    def database(self) -> Path:
        return self.data / "weightwarden.db"

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.database, isolation_level=None)

    def verify(self, *args: str) -> tuple[int, dict[str, Any], str]:
        """`weightwarden verify --json` as users run it: (exit code, report, stderr)."""
        result = run_cli("verify", "--json", "--config", str(self.config), *args)
        return result.returncode, (json.loads(result.stdout) if result.stdout.strip() else {}), result.stderr

    def relink(self) -> None:
        """What a tamperer without the key does after an edit: recompute every chain link."""
        conn = self.db()
        rows = conn.execute("select sequence, kind, record from (select sequence, 'event' kind, record from events"
                            " union all select sequence, 'alert', record from alerts) order by sequence").fetchall()
        previous = GENESIS
        conn.execute("begin")
        for sequence, kind, record in rows:
            previous = link(previous, kind, record)
            conn.execute(f"update {kind}s set chain_hash = ? where sequence = ?", [previous, sequence])
        conn.execute("commit")


def _events(config: Path) -> list[dict[str, Any]]:
    result = run_cli("events", "--json", "--config", str(config))
    return json_lines(result.stdout) if result.returncode == 0 else []


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Log:
    root = tmp_path_factory.mktemp("pristine")
    for name in ("models", "elsewhere", "data", "siem"):
        (root / name).mkdir()
    data = root / "data"
    config = root / "config.toml"
    out = root / "siem" / "weightwarden.jsonl"
    config.write_text(config_text(data, root, out))
    source = write_safetensors(root / "models" / "llama-7b" / "model.safetensors", rows=2048)
    with (root / "agent.log").open("ab") as log:
        agent = subprocess.Popen([WEIGHTWARDEN, "agent", "--config", str(config)], stdout=subprocess.DEVNULL,
                                 stderr=log)
    try:
        wait_for(lambda: any(e["event"]["action"] == "scan-finished" for e in _events(config)), timeout=60,
                 what="the initial inventory")
        subprocess.run(["cp", str(source), str(root / "elsewhere" / "innocent.bin")], check=True)

        def copy_alert() -> dict[str, Any] | None:
            result = run_cli("alerts", "--json", "--config", str(config))
            return next((a for a in json_lines(result.stdout) if a["rule"] == "model-copy"), None)

        alert = wait_for(copy_alert, timeout=30, what="the model-copy alert")
        reply = control.request(control.socket_path(str(data)), {"op": "acknowledge", "alert_id": alert["id"]})
        assert reply["ok"], reply
        wait_for(lambda: any(e["event"]["action"] == "alert-reviewed" for e in _events(config)), timeout=30,
                 what="the review, chained")
        started = time.monotonic()
        wait_for(lambda: sum(e["event"]["action"] == "chain-checkpoint" for e in _events(config)) >= 3
                 and time.monotonic() - started > 2, timeout=30, what="signed checkpoints after the review")
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=60) == 0
    pinned = root / "siem" / PUBLIC_KEY_NAME
    shutil.copy(data / PUBLIC_KEY_NAME, pinned)
    return Log(root, data, config, out, pinned, alert["id"])


@pytest.fixture
def log(pristine: Log, tmp_path: Path) -> Iterator[Log]:
    """A private copy of the pristine data directory and SIEM copy, intact (verify says so)."""
    data = tmp_path / "data"
    shutil.copytree(pristine.data, data, ignore=shutil.ignore_patterns("*.sock"))
    os.chmod(data, 0o700)
    out = tmp_path / "weightwarden.jsonl"
    shutil.copy(pristine.siem_copy, out)
    config = tmp_path / "config.toml"
    config.write_text(config_text(data, pristine.root, out))
    copy = Log(tmp_path, data, config, out, pristine.pinned_key, pristine.alert_id)
    yield copy
