"""Attack (issue 15): one record stops a destination for good, whatever the exception and the transport.

The Forwarder with each real transport: a record whose text cannot be encoded (lone surrogate), a stored
record no renderer can take (corrupted by someone who can write the database), and a record the transport
fails on with an exception that is not a TransportError. Before, each of these ended the forwarder thread
and, after a restart, ended it again on the same record. Now: the record is delivered (text made
encodable) or dead-lettered with the reason and a forward-health record, and the records after it arrive.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.agent.forward.certs import Pki
from tests.agent.forward.conftest import destination, forwarding, pki, store_records  # noqa: F401 - pki: fixture
from tests.agent.forward.parsers import parse_5424
from tests.agent.forward.receivers import Rsyslog, rsyslogd
from tests.waiting import wait_for
from weightwarden.agent.config import ForwardDestination
from weightwarden.agent.events import Action, Category, Event, Record
from weightwarden.agent.forward.destinations import build_transport
from weightwarden.agent.forward.forwarder import Forwarder
from weightwarden.agent.forward.transport import Outcome, Transport
from weightwarden.agent.store.outbox import Outbox, OutboxRecord


def hostile_then_plain(count: int = 5) -> list[Record]:
    # The surrogate stays out of the columns the store indexes (model, path): those are the store's to guard.
    return [Event(Action.MODEL_CREATED, Category.FILE, "created x\udcffy\x85\u2028", model="m\u2028",
                  details={"metadata": {"note": "x\udcffy", "k\udcfe": "v"}}),
            *[Event(Action.MODEL_MODIFIED, Category.FILE, f"plain {n}") for n in range(count)]]


def corrupt(database: Path, record_id: str) -> None:
    with sqlite3.connect(database) as db:
        assert db.execute("update events set record = json_set(record, '$.time', 'not a time') where id = ?",
                          [record_id]).rowcount == 1


def dead_letters(database: Path, name: str) -> list[dict[str, Any]]:
    outbox = Outbox(database)
    try:
        return outbox.dead_letters(name)
    finally:
        outbox.close()


def cursor(database: Path, name: str) -> int:
    outbox = Outbox(database)
    try:
        return outbox.cursor(name)
    finally:
        outbox.close()


def file_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]


def test_file_destination_delivers_the_hostile_record_and_dead_letters_the_corrupted_one(tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, hostile_then_plain())
    corrupt(database, stored[2].id)
    out = tmp_path / "out.jsonl"
    with forwarding(destination("local", type="file", path=str(out), format="native"), database) as (_f, emitted):
        wait_for(lambda: cursor(database, "local") == stored[-1].sequence, timeout=10, what="the cursor at the end")
    delivered = [line["id"] for line in file_lines(out)]
    assert delivered == [r.id for r in stored if r.id != stored[2].id]
    assert file_lines(out)[0]["details"]["metadata"] == {"note": "x\\udcffy", "k\\udcfe": "v"}
    (dead,) = dead_letters(database, "local")
    assert dead["record_id"] == stored[2].id and dead["reason"].startswith("cannot render: ValueError:")
    (health,) = emitted
    assert isinstance(health, Event) and health.action == Action.FORWARD_HEALTH and health.severity == 5
    assert health.details["record_id"] == stored[2].id and health.details["status"] == "dead-letter"


class Failing:
    """A real transport that raises something other than a TransportError for chosen records (a bug, or a
    record some library chokes on), wherever they sit in a batch."""

    def __init__(self, inner: Transport, poison: set[str]) -> None:
        self.inner = inner
        self.poison = poison
        self.batches: list[int] = []

    def send(self, records: list[OutboxRecord]) -> Outcome:
        self.batches.append(len(records))
        if any(r.id in self.poison for r in records):
            raise RuntimeError("the library choked")
        return self.inner.send(records)

    def poll(self) -> Outcome:
        return self.inner.poll()

    def unconfirmed(self) -> int:
        return self.inner.unconfirmed()

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        self.inner.close()


def test_an_unexpected_send_failure_isolates_the_record_and_delivery_goes_on(tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, f"e{n}") for n in range(30)])
    poison = {stored[7].id, stored[21].id}
    out = tmp_path / "out.jsonl"
    transports: list[Failing] = []

    def factory(dest: ForwardDestination, host: str) -> Transport:
        transports.append(Failing(build_transport(dest, host), poison))
        return transports[-1]

    dest = destination("local", type="file", path=str(out), format="native", batch_size=10)
    with forwarding(dest, database, transport_factory=factory) as (_forwarder, emitted):
        wait_for(lambda: cursor(database, "local") == stored[-1].sequence, timeout=10, what="the cursor at the end")
    assert [line["id"] for line in file_lines(out)] == [r.id for r in stored if r.id not in poison]
    dead = dead_letters(database, "local")
    assert sorted(d["record_id"] for d in dead) == sorted(poison)
    assert all(d["reason"] == "cannot send: RuntimeError: the library choked" for d in dead)
    # One health record for both: the second came within the minute (and is counted by the next one).
    (health,) = emitted
    assert health.details["record_id"] == stored[7].id  # type: ignore[union-attr]
    assert len(transports) == 1 and 1 in transports[0].batches and max(transports[0].batches) == 10


def test_a_transport_that_cannot_be_built_is_retried_not_fatal(tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, "e")])
    out = tmp_path / "out.jsonl"
    attempts: list[int] = []

    def factory(dest: ForwardDestination, host: str) -> Transport:
        attempts.append(1)
        if len(attempts) < 3:
            raise KeyError("a bug in the configuration code")
        return build_transport(dest, host)

    with forwarding(destination("local", type="file", path=str(out)), database, transport_factory=factory) as (f, _):
        wait_for(lambda: cursor(database, "local") == stored[-1].sequence, timeout=10, what="the cursor at the end")
        assert f.errors == 2 and "KeyError" in (f.last_error or "")


@pytest.mark.skipif(rsyslogd() is None, reason="rsyslog not installed (installer/dev.sh installs it)")
def test_syslog_over_tls_to_rsyslog_survives_both(tmp_path: Path, pki: Pki) -> None:  # noqa: F811 - fixture
    database = tmp_path / "ww.db"
    stored = store_records(database, hostile_then_plain())
    corrupt(database, stored[3].id)
    receiver = Rsyslog(tmp_path / "rsyslog", pki).start()
    try:
        dest = destination("siem", type="syslog", address="127.0.0.1", port=receiver.port, transport="tls",
                           ca_file=str(pki.ca), resend_window_seconds=0.2)
        with forwarding(dest, database) as (_forwarder, emitted):
            wait_for(lambda: cursor(database, "siem") == stored[-1].sequence, timeout=20,
                     what="the cursor at the end")
        messages = wait_for(lambda: len(receiver.messages()) >= len(stored) - 1 and receiver.messages(),
                            timeout=10, what="every deliverable message in rsyslog")
    finally:
        receiver.kill()
    by_id = {parse_5424(m["raw"]).sd["weightwarden@32473"]["id"]: parse_5424(m["raw"]) for m in messages}
    assert set(by_id) == {r.id for r in stored} - {stored[3].id}
    assert "msg=created x\\\\udcffy\\n\\n" in by_id[stored[0].id].msg
    assert by_id[stored[0].id].sd["weightwarden@32473"]["model"] == "m "
    (dead,) = dead_letters(database, "siem")
    assert dead["record_id"] == stored[3].id and "not a time" in dead["reason"]
    assert [e.details["record_id"] for e in emitted] == [stored[3].id]  # type: ignore[union-attr]


NOT_RECORDS = {  # what someone who can write the database puts in a record's place (SQL expressions)
    "not-json": "'garbage'",
    "nested-too-deep": "replace(hex(zeroblob(50000)), '00', '[')",
    "not-an-object": "'[1, 2]'",
    "null": "null",
}


@pytest.mark.parametrize("expression", NOT_RECORDS.values(), ids=NOT_RECORDS.keys())
def test_a_stored_record_that_is_not_a_record_is_dead_lettered(tmp_path: Path, expression: str) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, f"e{n}") for n in range(4)])
    with sqlite3.connect(database) as db:
        assert db.execute(f"update events set record = {expression} where id = ?", [stored[1].id]).rowcount == 1
    out = tmp_path / "out.jsonl"
    with forwarding(destination("local", type="file", path=str(out), format="native"), database) as (_f, emitted):
        wait_for(lambda: cursor(database, "local") == stored[-1].sequence, timeout=10, what="the cursor at the end")
    assert [line["id"] for line in file_lines(out)] == [r.id for r in stored if r.id != stored[1].id]
    (dead,) = dead_letters(database, "local")
    assert dead["record_id"] == stored[1].id and dead["reason"].startswith("cannot render: ValueError: the stored "
                                                                          "record cannot be read")
    assert [e.details["record_id"] for e in emitted] == [stored[1].id]  # type: ignore[union-attr]


def test_a_stored_record_that_is_not_utf8_is_delivered_with_replacement_characters(tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, f"e{n}") for n in range(4)])
    with sqlite3.connect(database) as db:  # sqlite keeps the bytes; Python's sqlite3 refused to read the row
        assert db.execute("""update events set record = replace(record, '"e1"', '"e1' || cast(x'ff' as text) || '"')
                             where id = ?""", [stored[1].id]).rowcount == 1
    out = tmp_path / "out.jsonl"
    with forwarding(destination("local", type="file", path=str(out), format="native"), database):
        wait_for(lambda: cursor(database, "local") == stored[-1].sequence, timeout=10, what="the cursor at the end")
    assert [line["message"] for line in file_lines(out)] == ["e0", "e1\ufffd", "e2", "e3"]
    assert dead_letters(database, "local") == []


def fail_first(monkeypatch: pytest.MonkeyPatch, owner: type, name: str, count: int, message: str) -> list[int]:
    """`owner.name` raises sqlite3.OperationalError(message) on its first `count` calls; returns the calls left."""
    original = getattr(owner, name)
    left = [count]

    def failing(*args: Any, **kwargs: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            raise sqlite3.OperationalError(message)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)
    return left


def test_a_failing_outbox_is_retried_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database itself fails under the forwarder (locked past the busy timeout by someone holding a write
    transaction, a full disk): it retries from the cursor instead of ending its thread."""
    database = tmp_path / "ww.db"
    stored = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, f"e{n}") for n in range(6)])
    left = [fail_first(monkeypatch, Outbox, "ensure", 1, "database is locked"),
            fail_first(monkeypatch, Outbox, "advance", 2, "database is locked"),
            fail_first(monkeypatch, Forwarder, "_enforce_budget", 1, "disk I/O error")]
    out = tmp_path / "out.jsonl"
    with forwarding(destination("local", type="file", path=str(out), format="native"), database) as (forwarder, _):
        wait_for(lambda: cursor(database, "local") == stored[-1].sequence, timeout=15, what="the cursor at the end")
        assert forwarder.errors == 4 and "OperationalError" in (forwarder.last_error or "")
    assert left == [[0], [0], [0]]
    ids = [line["id"] for line in file_lines(out)]
    assert set(ids) == {r.id for r in stored}  # at least once: a batch whose advance failed is sent again
