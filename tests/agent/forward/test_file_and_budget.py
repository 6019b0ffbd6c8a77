"""JSON-lines files (ECS, OCSF) with rotation, and the disk budget's explicit events-dropped record."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.agent.forward.conftest import destination, forwarding, hostile_records, store_records, wait_for
from tests.agent.forward.receivers import free_port
from weightwarden.agent.events import Action, Alert, Category, Event
from weightwarden.agent.forward import forwarder as forwarder_module
from weightwarden.agent.forward.ocsf import OCSF_VERSION
from weightwarden.agent.store import RecordWriter, Store
from weightwarden.agent.store.outbox import Outbox


def lines(*paths: Path) -> list[dict[str, Any]]:
    found = []
    for path in paths:
        if path.exists():
            found.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return found


def test_ocsf_lines_carry_class_type_time_and_ids(tmp_path: Path) -> None:
    database, out = tmp_path / "ww.db", tmp_path / "out" / "ocsf.jsonl"
    stored = store_records(database, hostile_records())
    with forwarding(destination("local", type="file", path=str(out), format="ocsf"), database):
        got = wait_for(lambda: len(lines(out)) == len(stored) and lines(out), timeout=10, what="every line")
    by_id = {line["metadata"]["uid"]: line for line in got}
    for record in stored:
        line = by_id[record.id]
        assert line["metadata"]["version"] == OCSF_VERSION and line["metadata"]["sequence"] == record.sequence
        assert line["type_uid"] == line["class_uid"] * 100 + line["activity_id"]
        assert line["time"] == int(record.time.timestamp() * 1000)
        if isinstance(record, Alert):
            assert (line["class_uid"], line["category_uid"]) == (2004, 2)
            assert line["finding_info"]["analytic"]["uid"] == record.rule_id and line["severity_id"] == 4
            assert line["evidences"][0]["file"]["path"] == record.paths[-1]
            assert line["actor"]["process"]["cmd_line"] == record.process.command_line  # type: ignore[union-attr]
        elif record.action == Action.MODEL_CREATED:
            assert (line["class_uid"], line["activity_id"]) == (1001, 1)
            assert line["file"]["path"] == record.file.path  # type: ignore[union-attr]
            assert line["file"]["hashes"][0] == {"algorithm_id": 3, "algorithm": "SHA-256", "value": "ab" * 32}
        elif record.action == Action.MODEL_MOVED:
            assert (line["class_uid"], line["activity_id"]) == (1001, 5)
            assert line["file"]["path"] == record.previous_path
            assert line["file_result"]["path"] == record.file.path  # type: ignore[union-attr]
        else:
            assert (line["class_uid"], line["activity_id"]) == (6002, 3)


def test_ecs_lines_rotate_and_keep_every_record_once(tmp_path: Path) -> None:
    database, out = tmp_path / "ww.db", tmp_path / "ecs.jsonl"
    stored = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, f"event {n} " + "x" * 200)
                                      for n in range(200)])
    dest = destination("local", type="file", path=str(out), format="ecs", max_bytes=8192, keep=100, batch_size=20)
    with forwarding(dest, database):
        outbox = Outbox(database)
        try:
            wait_for(lambda: outbox.cursor("local") == stored[-1].sequence, timeout=10, what="the cursor at the end")
        finally:
            outbox.close()
    rotated = sorted(tmp_path.glob("ecs.jsonl.*"), key=lambda p: -int(p.suffix[1:]))
    assert len(rotated) > 3
    longest = max(len(line) for p in rotated for line in p.read_bytes().splitlines())
    assert all(p.stat().st_size < 8192 + 20 * longest for p in rotated)  # a file ends within one batch
    got = lines(*rotated, out)
    assert [line["event"]["sequence"] for line in got] == [r.sequence for r in stored]  # in order, once each
    assert got[0]["event"]["id"] == stored[0].id and got[0]["ecs"]["version"].startswith("8.")


def stored_sizes(database: Path) -> dict[int, int]:
    """sequence -> bytes of the stored record, read independently of the outbox."""
    conn = sqlite3.connect(database)
    try:
        return dict(conn.execute("select sequence, length(cast(record as blob)) from events"))
    finally:
        conn.close()


def test_over_budget_backlog_drops_oldest_with_an_explicit_forwarded_record(tmp_path: Path) -> None:
    """A destination that was unreachable long enough: a budget in bytes keeps the newest records that fit;
    an events-dropped record names how many and which, is stored (chained) and is itself forwarded."""
    database, out = tmp_path / "ww.db", tmp_path / "out.jsonl"
    stored = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, f"e{n} " + "x" * (500 + 37 * n))
                                      for n in range(50)])
    sizes = stored_sizes(database)
    budget_bytes = sum(sizes[r.sequence] for r in stored[-12:]) + 100  # room for the newest 12 and a bit
    total = sum(sizes.values())
    # What must go: the oldest records until the rest fits, counted here from the stored sizes.
    expected, freed = 0, 0
    while total - freed > budget_bytes:
        freed += sizes[stored[expected].sequence]
        expected += 1
    store = Store(database)
    writer = RecordWriter(store, flush_seconds=0.01)
    try:
        dest = destination("local", type="file", path=str(out), format="native",
                           backlog_max_mb=budget_bytes / (1024 * 1024))
        with forwarding(dest, database) as (forwarder, _emitted):
            forwarder.emit = writer.submit
            got = wait_for(lambda: [line for line in lines(out) if line["event"]["action"] == "events-dropped"],
                           timeout=10, what="the events-dropped record in the output")
        dropped = got[0]
        assert 35 <= expected < 50 and dropped["details"]["dropped"] == expected
        assert dropped["details"]["bytes_dropped"] == freed
        assert (dropped["details"]["first_sequence"], dropped["details"]["last_sequence"]) == (1, expected)
        assert dropped["message"].startswith(f"{expected} events dropped for local")
        assert "MiB" in dropped["message"]
        delivered = [line["sequence"] for line in lines(out) if line["event"]["action"] != "events-dropped"]
        assert delivered == [r.sequence for r in stored[expected:]]
        outbox = Outbox(database)
        try:
            state = outbox.state("local")
        finally:
            outbox.close()
        assert state is not None and state.dropped_total == expected
    finally:
        writer.close()
        report = store.verify_chain(None)
        store.close()
    assert report.ok  # the drop is a forwarding decision: the local log keeps everything


def test_budget_counts_new_records_and_deliveries_between_checks(tmp_path: Path) -> None:
    """The running byte count stays exact as records arrive and the cursor moves (it is never recounted)."""
    database = tmp_path / "ww.db"
    store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, "y" * (100 * n)) for n in range(1, 30)])
    outbox = Outbox(database)
    try:
        sizes = stored_sizes(database)
        assert outbox.record_bytes(0, 29) == sum(sizes.values())
        assert outbox.record_bytes(10, 20) == sum(sizes[s] for s in range(11, 21))
        through, freed = outbox.budget_cut(5, sizes[6] + sizes[7] + 1)
        assert (through, freed) == (8, sizes[6] + sizes[7] + sizes[8])
        assert outbox.budget_cut(29, 10) == (29, 0)  # nothing left to drop
    finally:
        outbox.close()


def test_budget_count_goes_in_chunks_and_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first count of a long backlog advances a chunk per check; the count is saved with the cursor, so a
    restarted forwarder only counts what arrived since (it never re-reads the backlog)."""
    monkeypatch.setattr(forwarder_module, "BUDGET_COUNT_CHUNK", 7)
    monkeypatch.setattr(forwarder_module, "BUDGET_CHECK_SECONDS", 0.02)
    counted: list[tuple[int, int]] = []
    record_bytes = Outbox.record_bytes

    def spy(self: Outbox, after: int, through: int) -> int:
        if through > after:
            counted.append((after, through))
        return record_bytes(self, after, through)

    monkeypatch.setattr(Outbox, "record_bytes", spy)
    database = tmp_path / "ww.db"
    first = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, "z" * n) for n in range(50)])
    down = destination("down", type="syslog", address="127.0.0.1", port=free_port(), transport="tcp",
                       retry_initial_seconds=0.01, retry_max_seconds=0.02)  # nothing listens: all stays queued
    outbox = Outbox(database)
    try:
        with forwarding(down, database):
            count = wait_for(lambda: (c := outbox.budget_count("down")) and c[1] == first[-1].sequence and c,
                             timeout=10, what="the first count reaching the end of the log")
        assert count == (0, first[-1].sequence, sum(stored_sizes(database).values()))
        assert max(through - after for after, through in counted) <= 7  # chunks, never the whole log at once
        counted.clear()
        more = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, "w" * 99) for _ in range(3)])
        with forwarding(down, database):
            total = sum(stored_sizes(database).values())
            wait_for(lambda: outbox.budget_count("down") == (0, more[-1].sequence, total),
                     timeout=10, what="the saved count extended by the new records")
        assert counted and all(after >= first[-1].sequence for after, _ in counted), counted
    finally:
        outbox.close()
