"""JSON-lines files (ECS, OCSF) with rotation, and the disk budget's explicit events-dropped record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.agent.forward.conftest import destination, forwarding, hostile_records, store_records, wait_for
from weightwarden.agent.events import Action, Alert, Category, Event
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
            assert line["file"]["path"] == record.paths[-1]
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
    assert all(p.stat().st_size < 8192 + 20 * 600 for p in rotated)
    got = lines(*rotated, out)
    assert [line["event"]["sequence"] for line in got] == [r.sequence for r in stored]  # in order, once each
    assert got[0]["event"]["id"] == stored[0].id and got[0]["ecs"]["version"].startswith("8.")


def test_over_budget_backlog_drops_oldest_with_an_explicit_forwarded_record(tmp_path: Path) -> None:
    """A destination that was unreachable long enough: the budget keeps the newest 10; an events-dropped record
    names how many and which, is stored (chained) and is itself forwarded."""
    database, out = tmp_path / "ww.db", tmp_path / "out.jsonl"
    stored = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, f"e{n}") for n in range(50)])
    store = Store(database)
    writer = RecordWriter(store, flush_seconds=0.01)
    try:
        dest = destination("local", type="file", path=str(out), format="native", backlog_limit=10)
        with forwarding(dest, database) as (forwarder, _emitted):
            forwarder.emit = writer.submit
            got = wait_for(lambda: [line for line in lines(out) if line["event"]["action"] == "events-dropped"],
                           timeout=10, what="the events-dropped record in the output")
        dropped = got[0]
        assert dropped["details"]["dropped"] == 40
        assert (dropped["details"]["first_sequence"], dropped["details"]["last_sequence"]) == (1, 40)
        assert dropped["message"].startswith("40 events dropped for local")
        delivered = [line["sequence"] for line in lines(out) if line["event"]["action"] != "events-dropped"]
        assert delivered == [r.sequence for r in stored[40:]]
        outbox = Outbox(database)
        try:
            state = outbox.state("local")
        finally:
            outbox.close()
        assert state is not None and state.dropped_total == 40
    finally:
        writer.close()
        report = store.verify_chain(None)
        store.close()
    assert report.ok  # the drop is a forwarding decision: the local log keeps everything
