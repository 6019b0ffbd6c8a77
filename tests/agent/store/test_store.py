from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from weightwarden.agent.events import Action, Alert, Category, Event, ModelFile, utc_now
from weightwarden.agent.fingerprint import CachedResult, FileKey
from weightwarden.agent.store import RecordWriter, Store, StoreError
from weightwarden.agent.store.migrations import MIGRATIONS


def event(message: str = "m", **kwargs: object) -> Event:
    return Event(Action.MODEL_CREATED, Category.FILE, message, **kwargs)  # type: ignore[arg-type]


def test_new_database_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "db" / "ww.db")
    assert store.schema_version() == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"events", "alerts", "model_files", "file_cache", "_migrations"} <= set(store.db.table_names())
    store.close()


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    Store(tmp_path / "ww.db").close()
    store = Store(tmp_path / "ww.db")
    assert [r["name"] for r in store.db["_migrations"].rows] == [name for name, _ in MIGRATIONS]
    store.close()


def test_newer_schema_is_refused_not_corrupted(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    store.db["_migrations"].insert({"name": "9999_from_the_future", "applied_at": "x"})
    store.close()
    with pytest.raises(StoreError, match="newer Weightwarden"):
        Store(tmp_path / "ww.db")


def test_read_only_store_needs_an_existing_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database yet"):
        Store(tmp_path / "missing.db", read_only=True)


def test_read_only_store_cannot_write(tmp_path: Path) -> None:
    Store(tmp_path / "ww.db").close()
    reader = Store(tmp_path / "ww.db", read_only=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.write([event()])
    reader.close()


def test_records_get_increasing_sequence_numbers_across_tables_and_restarts(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    first = store.write([event("a"), Alert(rule_id="r", title="t", severity=5, message="x"), event("b")])
    assert [r.sequence for r in first] == [1, 2, 3]
    store.close()
    store = Store(tmp_path / "ww.db")
    assert store.write([event("c")])[0].sequence == 4
    assert [e["message"] for e in store.events()] == ["a", "b", "c"]
    assert [a["rule"] for a in store.alerts()] == ["r"]
    store.close()


def test_since_and_limit(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    old = event("old", time=utc_now() - timedelta(days=2))
    store.write([old, event("new1"), event("new2")])
    assert [e["message"] for e in store.events(since=utc_now() - timedelta(hours=1))] == ["new1", "new2"]
    assert [e["message"] for e in store.events(limit=2)] == ["new1", "new2"]
    store.close()


def test_model_files_upsert_keeps_first_seen_and_marks_gone(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    file = ModelFile(path="/m/a.safetensors", format="safetensors", size=10, model="a", sha256="00" * 32)
    first = utc_now() - timedelta(hours=1)
    store.upsert_model_files([file], seen=first)
    store.upsert_model_files([file], seen=utc_now())
    row = next(iter(store.db["model_files"].rows))
    assert row["first_seen"] < row["last_seen"]
    assert store.model_files() == [file]
    store.mark_model_files_gone(["/m/a.safetensors"])
    assert store.model_files() == []
    assert len(store.model_files(present_only=False)) == 1
    store.close()


def test_file_cache_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    entries = {FileKey(1, 2, 3, 4): CachedResult("gguf", "ab" * 32, "q1:x", {"version": 3}),
               FileKey(1, 5, 3, 4): CachedResult(None)}
    store.save_file_cache(entries)
    assert store.load_file_cache() == entries
    store.close()


def test_writer_batches_and_flushes_on_close(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    batches: list[int] = []
    writer = RecordWriter(store, batch_size=50, flush_seconds=10, on_written=lambda rs: batches.append(len(rs)))
    for i in range(120):
        writer.submit(event(str(i)))
    writer.close()
    assert sum(batches) == 120
    assert batches[:2] == [50, 50]
    assert [e["message"] for e in store.events()] == [str(i) for i in range(120)]
    store.close()


def test_writer_flush_waits_for_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    writer = RecordWriter(store, batch_size=1000, flush_seconds=60)
    writer.submit(event("x"))
    assert writer.flush(timeout=10)
    assert store.counts()["events"] == 1
    writer.close()
    store.close()


def test_concurrent_writers_in_one_store_never_reuse_a_sequence(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")

    def burst() -> None:
        for _ in range(50):
            store.write([event()])

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sequences = [e["sequence"] for e in store.events()]
    assert sequences == list(range(1, 201))
    store.close()
