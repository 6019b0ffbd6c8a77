"""The store writer's status, through the same interface as the sensors, on a real database."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tests.waiting import wait_for
from weightwarden.agent.events import Action, Category, Event
from weightwarden.agent.store import RecordWriter, Store


def event(message: str) -> Event:
    return Event(Action.MODEL_CREATED, Category.FILE, message)


def test_status_counts_committed_and_waiting_records(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    writer = RecordWriter(store, batch_size=1000, flush_seconds=60)
    try:
        for number in range(5):
            writer.submit(event(str(number)))
        status = writer.status()
        assert (status.name, status.state, status.method, status.message) == (
            "store", "running", "sqlite", "batched writes")
        assert (status.backlog, status.events, status.drops) == (5, 0, 0)  # gathered into a batch, not committed
        assert status.privilege == ("root" if os.geteuid() == 0 else "user")
        assert writer.flush(timeout=10)
        assert (writer.status().backlog, writer.status().events) == (0, 5)
    finally:
        writer.close()
        store.close()
    assert writer.status().state == "stopped"


def test_a_failed_batch_is_a_drop_and_the_store_degraded_until_written(tmp_path: Path) -> None:
    """Another connection holds the database locked: the batch fails after the busy timeout, is kept, and
    is written once the lock is gone."""
    store = Store(tmp_path / "ww.db")
    writer = RecordWriter(store, batch_size=3, flush_seconds=0.2)
    other = sqlite3.connect(tmp_path / "ww.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        for number in range(3):
            writer.submit(event(str(number)))
        wait_for(lambda: writer.status().drops, timeout=60, what="a failed batch")
        status = writer.status()
        assert (status.state, status.backlog, status.events) == ("degraded", 3, 0)
        assert status.message.endswith("batches failed and were retried")
        other.execute("ROLLBACK")
        wait_for(lambda: writer.status().events == 3, timeout=60, what="the kept batch to be written")
        assert writer.status().backlog == 0 and writer.status().state == "degraded"
        assert [e["message"] for e in store.events()] == ["0", "1", "2"]
    finally:
        other.close()
        writer.close()
        store.close()
