"""The evidence guard on a real SQLite database in WAL mode, the way the agent holds its own: a foreign
writer is reported (by pid, with what it did), and the guard never disturbs the agent's SQLite. A descriptor
on the database, closed again by the agent's process, would drop every POSIX lock its SQLite connection
holds on the file; the next client closing would then take itself for the last one and delete the WAL under
the agent (and rebuild the shared-memory index it maps: SIGBUS)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.agent.sensors.conftest import Collected, require_fanotify, wait_for
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.evidence_guard import EvidenceGuard, EvidenceTouch

pytestmark = pytest.mark.root

WRITER = textwrap.dedent("""
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1])
    db.execute("update records set body = 'rewritten'")
    db.commit()
    db.close()
""")


def kind(path: str) -> str | None:
    name = os.path.basename(path)
    return {"agent.db": "database", "agent.db-wal": "write-ahead log"}.get(name)


def test_a_foreign_writer_is_reported_and_the_agents_own_connection_keeps_its_locks(tmp_path: Path) -> None:
    require_fanotify()
    database = tmp_path / "agent.db"
    mine = sqlite3.connect(database)  # the agent's own connection, held open the whole time
    mine.execute("pragma journal_mode=wal")
    mine.execute("create table records (body text)")
    mine.execute("insert into records values ('as it happened')")
    mine.commit()
    collected = Collected()
    guard = EvidenceGuard(ProcessCache(), collected.add, collected.add_health, directories=[str(tmp_path)],
                          names=kind, writes_only={"write-ahead log"})
    guard.start()
    try:
        writer = subprocess.run([sys.executable, "-c", WRITER, str(database)], check=True, timeout=60)
        touches = wait_for(lambda: [t for t in list(collected.items) if isinstance(t, EvidenceTouch)
                                    and t.process.pid != os.getpid()], timeout=10, what="the writer reported")
        assert {(t.what, t.how) for t in touches} >= {("database", "opened for writing")}, touches
        assert writer.returncode == 0
        # the agent's connection still holds its locks: the writer, closing, was not the last connection
        assert (tmp_path / "agent.db-wal").exists(), sorted(p.name for p in tmp_path.iterdir())
        mine.execute("insert into records values ('after')")
        mine.commit()
        assert [r[0] for r in mine.execute("select body from records")] == ["rewritten", "after"]
    finally:
        guard.stop()
        mine.close()


def test_the_agents_own_writes_and_readers_are_not_reported(tmp_path: Path) -> None:
    require_fanotify()
    database = tmp_path / "agent.db"
    collected = Collected()
    guard = EvidenceGuard(ProcessCache(), collected.add, collected.add_health, directories=[str(tmp_path)],
                          names=kind, writes_only={"write-ahead log"})
    guard.start()
    try:
        mine = sqlite3.connect(database)
        mine.execute("pragma journal_mode=wal")
        mine.execute("create table records (body text)")
        mine.commit()
        reader = f"import sqlite3; print(sqlite3.connect('file:{database}?mode=ro', uri=True)" \
                 ".execute('select count(*) from records').fetchone()[0])"
        assert subprocess.run([sys.executable, "-c", reader], check=True, capture_output=True, text=True,
                              timeout=60).stdout.strip() == "0"
        # the barrier: a foreign write after them is reported; by then the reader's events were handled
        subprocess.run([sys.executable, "-c", WRITER, str(database)], check=True, timeout=60)
        touches = wait_for(lambda: [t for t in list(collected.items) if isinstance(t, EvidenceTouch)],
                           timeout=10, what="the barrier write")
        assert all("update records" in (t.process.command_line or "") for t in touches), touches
        mine.close()
    finally:
        guard.stop()
