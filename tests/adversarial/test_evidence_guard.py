"""Adversarial (issue 15, item 2): the agent guards its evidence.

The agent runs as the installed service runs it (system mode, root, no HOME, default configuration; its
data directory given the way the unit gives it). An insider with write access to the database (root, or
whoever the file's permissions would let) opens it for writing to falsify an alert; the agent's evidence
guard sees another process open its database for writing and raises `evidence-tampered` (severity 9),
naming the process and the file. The admin's own read-only tools (`alerts`, `verify`, `status`) raise
nothing.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.sensors.conftest import require_fanotify
from tests.agent.test_installed_scope import InstalledAgent
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

# What the tamperer runs: an ordinary SQLite client, a process of its own.
FALSIFY = textwrap.dedent("""
    import sqlite3, sys
    with sqlite3.connect(sys.argv[1]) as db:
        db.execute("update events set severity = 0 where sequence = 1")
    print("done")
""")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledAgent]:
    if os.geteuid() != 0:
        pytest.skip("the installed service runs as root")
    if os.path.exists("/etc/weightwarden/config.toml"):
        pytest.skip("this machine has an installed config: the test runs the service without one")
    require_fanotify()
    data = tmp_path_factory.mktemp("guarded") / "data"
    service = InstalledAgent(data)
    try:
        wait_for(lambda: guard_running(service), timeout=60, what="the evidence guard to run")
        yield service
    finally:
        assert service.stop() == 0


def guard_running(agent: InstalledAgent) -> bool:
    result = subprocess.run([*agent_cli(agent), "status", "--json", "--mode", "system"], env=agent.env,
                            capture_output=True, text=True, timeout=60)
    return '"evidence-guard"' in result.stdout and '"running"' in result.stdout


def agent_cli(agent: InstalledAgent) -> list[str]:
    return [str(agent.process.args[0])]  # type: ignore[index]


def tampered(agent: InstalledAgent) -> list[dict[str, Any]]:
    """Every stored evidence-tampered record (an incident's updates too: one tamperer's tree is one incident)."""
    return [a for a in agent.json_lines("alerts", "--every-update") if a["rule"] == "evidence-tampered"]


def test_another_process_writing_the_database_raises_a_severity_9_alert(agent: InstalledAgent) -> None:
    database = Path(agent.env["WEIGHTWARDEN_DATA_DIR"]) / "weightwarden.db"
    wait_for(database.exists, timeout=30, what="the agent's database")
    before = {a["id"] for a in tampered(agent)}
    falsifier = subprocess.run([sys.executable, "-c", FALSIFY, str(database)], capture_output=True, text=True,
                               timeout=60, check=True)
    assert falsifier.stdout.strip() == "done"
    ended = time.time()
    (alert, *_) = wait_for(lambda: [a for a in tampered(agent) if a["id"] not in before], timeout=15,
                              what="the evidence-tampered alert")
    print(f"\nevidence-tampered alert {time.time() - ended:.2f} s after the write ended: {alert['message']}")
    assert alert["severity"] == 9
    assert (alert.get("process") or {}).get("name", "").startswith("python"), alert
    assert any(str(database) in p for p in alert["paths"]) or str(database) in alert["message"], alert


def written(agent: InstalledAgent) -> list[dict[str, Any]]:
    """Every evidence-written event (each one, where alerts fold a tamperer's repeats into one incident)."""
    return [e for e in agent.json_lines("events") if e["event"]["action"] == "evidence-written"]


def test_the_admins_read_only_tools_raise_nothing(agent: InstalledAgent) -> None:
    database = Path(agent.env["WEIGHTWARDEN_DATA_DIR"]) / "weightwarden.db"
    wait_for(database.exists, timeout=30, what="the agent's database")
    before = {e["id"] for e in written(agent)}
    for command in (["alerts"], ["events"], ["status"], ["verify"]):
        subprocess.run([*agent_cli(agent), *command, "--mode", "system"], env=agent.env, capture_output=True,
                       timeout=60)
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as reader:  # any read-only client
        reader.execute("select count(*) from events").fetchone()
    # the barrier: a write after them is recorded; by then anything about the reads would have been too
    barrier = subprocess.Popen([sys.executable, "-c", FALSIFY, str(database)], stdout=subprocess.PIPE)
    assert barrier.communicate(timeout=60)[0].strip() == b"done"
    new = wait_for(lambda: [e for e in written(agent) if e["id"] not in before and e["process"]["pid"] == barrier.pid],
                   timeout=15, what="the barrier write's event") and \
        [e for e in written(agent) if e["id"] not in before]
    assert all(e["process"]["pid"] == barrier.pid for e in new), [e["message"] for e in new]
