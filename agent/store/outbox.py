"""The forwarding outbox: the log itself, read in sequence order, with a cursor per destination.

Every record is already stored once, durably, with a gap-free sequence number; an outbox that copied it
again would double the disk cost of a long outage. So a destination's outbox is "every record after its
cursor", and its backlog is `last sequence - cursor`. The cursor moves only after the destination
confirmed delivery (HEC ack, `_bulk` item status, TCP-acked and held past the resend window, fsync), so a
kill -9 or a reboot resumes exactly where confirmed delivery stopped: at-least-once, with stable ids.

Each Outbox has its own SQLite connection (WAL lets it read while the agent's writer commits).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from weightwarden.agent.events import format_time, utc_now
from weightwarden.agent.store.chain import GENESIS
from weightwarden.agent.store.sql import run_script


def create_outbox_tables(db: sqlite_utils.Database) -> None:
    """Migration: per-destination cursors and the dead-letter table (records a destination refused)."""
    run_script(db,
        """
        CREATE TABLE "forward_cursors" (
           "destination" TEXT PRIMARY KEY,
           "sequence" INTEGER,
           "delivered_total" INTEGER,
           "delivered_at" TEXT,
           "last_error" TEXT,
           "last_error_at" TEXT,
           "dropped_total" INTEGER,
           "dead_total" INTEGER
        );
        CREATE TABLE "dead_letters" (
           "id" INTEGER PRIMARY KEY,
           "destination" TEXT,
           "record_id" TEXT,
           "sequence" INTEGER,
           "time" TEXT,
           "reason" TEXT,
           "record" TEXT
        );
        CREATE INDEX "idx_dead_letters_destination_sequence" ON "dead_letters" ("destination", "sequence");
        """
    )


def add_budget_count(db: sqlite_utils.Database) -> None:
    """Migration: each destination's running count for the disk budget, (cursor, through, bytes) = the bytes
    of the records after `cursor` up to `through`; kept so a restart never recounts a long backlog."""
    for column in ("budget_cursor", "budget_through", "budget_bytes"):
        db.execute(f'ALTER TABLE "forward_cursors" ADD COLUMN "{column}" INTEGER')


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    sequence: int
    kind: str  # "event" or "alert"
    id: str
    record: dict[str, Any]
    # Why the stored text could not be read as a record (a row rewritten by hand); `record` then holds the
    # text. Such a record goes to the dead letters with this reason instead of stopping its destination.
    unreadable: str | None = None
    # Its place in the hash chain (store/chain.py): the exact stored text the link covers, its link and the
    # link before it. JSON destinations forward them so the central copy can be verified on its own
    # (`verify --from`, docs/forwarding.md); None where a record was built without the log (tests, compare).
    chain: ChainPlace | None = None


@dataclass(frozen=True, slots=True)
class ChainPlace:
    text: str  # the `record` column, byte for byte what the link hashes
    hash: str  # link n
    previous: str  # link n-1 (the genesis link for record 1)


@dataclass(frozen=True)
class DestinationState:
    destination: str
    cursor: int
    last_sequence: int
    delivered_total: int
    delivered_at: str | None
    last_error: str | None
    last_error_at: str | None
    dropped_total: int
    dead_total: int

    @property
    def backlog(self) -> int:
        return max(0, self.last_sequence - self.cursor)


def _outbox_record(sequence: int, kind: str, record_id: str, text: Any,
                   chain: ChainPlace | None = None) -> OutboxRecord:
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
    # ValueError: not JSON; TypeError: NULL; RecursionError: nested too deep to parse.
    except (ValueError, TypeError, RecursionError) as error:
        shown = text if isinstance(text, str) else repr(text)
        return OutboxRecord(sequence, kind, record_id, {"stored_text": shown[:4000]},
                            unreadable=f"{type(error).__name__}: {error}"[:500])
    return OutboxRecord(sequence, kind, record_id, record, chain=chain)


class Outbox:
    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only:
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 10000")
        # Text that is not UTF-8 (a row rewritten by hand) is read with U+FFFD, not refused: one such row
        # must not stop every destination at it.
        self._conn.text_factory = lambda data: data.decode("utf-8", "replace")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ reading the log

    def last_sequence(self) -> int:
        with self._lock:
            row = self._conn.execute("select max(coalesce((select max(sequence) from events), 0),"
                                     " coalesce((select max(sequence) from alerts), 0))").fetchone()
        return int(row[0] or 0)

    def after(self, sequence: int, limit: int) -> list[OutboxRecord]:
        """Up to `limit` records with a sequence above `sequence`, in order (each table by its index)."""
        with self._lock:
            rows: list[tuple[int, str, str, str, str | None]] = []
            for kind, table in (("event", "events"), ("alert", "alerts")):
                rows.extend((row[0], kind, row[1], row[2], row[3]) for row in self._conn.execute(
                    f"select sequence, id, record, chain_hash from {table} where sequence > ? order by sequence"
                    " limit ?", [sequence, limit]))
            rows.sort()
            rows = rows[:limit]
            links = {row[0]: row[4] for row in rows}
            if rows and rows[0][0] > 1:  # the link before the first: one indexed look-up per batch
                before = rows[0][0] - 1
                found = self._conn.execute("select chain_hash from events where sequence = ? union all"
                                           " select chain_hash from alerts where sequence = ?",
                                           [before, before]).fetchone()
                links[before] = found[0] if found else None
        result = []
        for seq, kind, rid, text, chain_hash in rows:
            previous = GENESIS if seq == 1 else links.get(seq - 1)
            place = (ChainPlace(text, chain_hash, previous)
                     if isinstance(text, str) and chain_hash and previous else None)
            result.append(_outbox_record(seq, kind, rid, text, place))
        return result

    def record_bytes(self, after: int, through: int) -> int:
        """Bytes of the stored records with after < sequence <= through: what the disk budget measures."""
        if through <= after:
            return 0
        with self._lock:
            return sum(int(self._conn.execute(
                f"select coalesce(sum(length(cast(record as blob))), 0) from {table}"
                " where sequence > ? and sequence <= ?", [after, through]).fetchone()[0])
                for table in ("events", "alerts"))

    def budget_cut(self, after: int, excess: int, chunk: int = 10_000) -> tuple[int, int]:
        """The oldest records after `after` that together hold at least `excess` bytes: (the last of them,
        their bytes). Walks sizes only, in sequence order, so it costs what is dropped, not the backlog."""
        freed, through = 0, after
        while freed < excess:
            sizes: list[tuple[int, int]] = []
            with self._lock:
                for table in ("events", "alerts"):
                    sizes.extend(self._conn.execute(
                        f"select sequence, length(cast(record as blob)) from {table} where sequence > ?"
                        " order by sequence limit ?", [through, chunk]).fetchall())
            if not sizes:
                break
            sizes.sort()
            for sequence, size in sizes[:chunk]:
                freed, through = freed + size, sequence
                if freed >= excess:
                    break
        return through, freed

    def budget_count(self, destination: str) -> tuple[int, int, int] | None:
        """The saved running count of the disk budget: (cursor, through, bytes), None before the first."""
        with self._lock:
            row = self._conn.execute("select budget_cursor, budget_through, budget_bytes from forward_cursors"
                                     " where destination = ?", [destination]).fetchone()
        if row is None or None in row:
            return None
        return int(row[0]), int(row[1]), int(row[2])

    def save_budget_count(self, destination: str, count: tuple[int, int, int]) -> None:
        with self._lock, self._conn:
            self._conn.execute("update forward_cursors set budget_cursor = ?, budget_through = ?, budget_bytes = ?"
                               " where destination = ?", [*count, destination])

    # ------------------------------------------------------------------ cursors

    def ensure(self, destination: str, *, start: str = "beginning") -> int:
        """The destination's cursor, created at the start of the log (or its current end)."""
        with self._lock, self._conn:
            row = self._conn.execute("select sequence from forward_cursors where destination = ?",
                                     [destination]).fetchone()
            if row is not None:
                return int(row[0])
            first = 0
            if start == "end":
                first = int(self._conn.execute(
                    "select max(coalesce((select max(sequence) from events), 0),"
                    " coalesce((select max(sequence) from alerts), 0))").fetchone()[0] or 0)
            self._conn.execute("insert into forward_cursors (destination, sequence, delivered_total, dropped_total,"
                               " dead_total) values (?, ?, 0, 0, 0)", [destination, first])
            return first

    def cursor(self, destination: str) -> int:
        with self._lock:
            row = self._conn.execute("select sequence from forward_cursors where destination = ?",
                                     [destination]).fetchone()
        return int(row[0]) if row else 0

    def advance(self, destination: str, sequence: int, delivered: int) -> None:
        """Delivery confirmed up to `sequence`; a cursor never moves back."""
        with self._lock, self._conn:
            self._conn.execute(
                "update forward_cursors set sequence = max(sequence, ?), delivered_total = delivered_total + ?,"
                " delivered_at = ?, last_error = null where destination = ?",
                [sequence, delivered, format_time(utc_now()), destination])

    def note_error(self, destination: str, message: str) -> None:
        with self._lock, self._conn:
            self._conn.execute("update forward_cursors set last_error = ?, last_error_at = ? where destination = ?",
                               [message[:1000], format_time(utc_now()), destination])

    def skip(self, destination: str, to_sequence: int) -> tuple[int, int]:
        """Move the cursor forward over undelivered records (disk budget): returns (first, last) skipped."""
        with self._lock, self._conn:
            current = int(self._conn.execute("select sequence from forward_cursors where destination = ?",
                                             [destination]).fetchone()[0])
            if to_sequence <= current:
                return current + 1, current
            self._conn.execute("update forward_cursors set sequence = ?, dropped_total = dropped_total + ?"
                               " where destination = ?", [to_sequence, to_sequence - current, destination])
        return current + 1, to_sequence

    def dead_letter(self, destination: str, record: OutboxRecord, reason: str) -> None:
        """A record the destination refused as malformed (HEC 400, `_bulk` item 400): kept, shown, not retried."""
        with self._lock, self._conn:
            self._conn.execute(
                "insert into dead_letters (destination, record_id, sequence, time, reason, record)"
                " values (?, ?, ?, ?, ?, ?)",
                [destination, record.id, record.sequence, format_time(utc_now()), reason[:2000],
                 json.dumps(record.record, sort_keys=True)])
            self._conn.execute("update forward_cursors set dead_total = dead_total + 1 where destination = ?",
                               [destination])

    # ------------------------------------------------------------------ status

    def state(self, destination: str) -> DestinationState | None:
        last = self.last_sequence()
        with self._lock:
            row = self._conn.execute(
                "select destination, sequence, delivered_total, delivered_at, last_error, last_error_at,"
                " dropped_total, dead_total from forward_cursors where destination = ?", [destination]).fetchone()
        if row is None:
            return None
        return DestinationState(row[0], int(row[1]), last, int(row[2] or 0), row[3], row[4], row[5],
                                int(row[6] or 0), int(row[7] or 0))

    def dead_letters(self, destination: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("where destination = ?", [destination]) if destination else ("", [])
        with self._lock:
            rows = self._conn.execute(
                f"select destination, record_id, sequence, time, reason from dead_letters {where}"
                " order by id desc limit ?", [*params, limit]).fetchall()
        return [{"destination": r[0], "record_id": r[1], "sequence": r[2], "time": r[3], "reason": r[4]}
                for r in rows]
