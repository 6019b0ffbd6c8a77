"""The hash chain over every stored record, its signed checkpoints, and the check behind `weightwarden verify`.

Link n = SHA-256(link n-1 (32 raw bytes) || kind || "\\n" || record JSON), in sequence order over events
and alerts together; link 0 is 32 zero bytes. The record JSON is exactly the text stored in the `record`
column (sorted keys), so what the app and the CLI show is what the chain covers. The alert `status`
column is deliberately outside the chain: reviews change it and are logged separately.

A checkpoint is an ordinary event (action `chain-checkpoint`) whose details carry the sequence and link it
signs and an Ed25519 signature over `checkpoint_message(...)`. It is stored, chained and forwarded like any
record, so the SIEM holds signed chain heads even if the machine is later wiped.

What verification can name: an edited record (its link no longer matches), a removed one (a sequence
gap, or a signed checkpoint past the last record), an inserted one (a row whose neighbours link past it,
or a duplicate sequence). Rewriting the whole chain after a point is caught by the first signed checkpoint
after that point; records after the last checkpoint are only as safe as their copies in the SIEM, which
is why `verify` reports how many are not yet covered by a signature.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from weightwarden.agent.events import format_time, parse_time, utc_now
from weightwarden.agent.keys import key_id as public_key_id
from weightwarden.agent.keys import verify_signature
from weightwarden.agent.store import derived

GENESIS = "0" * 64
CHECKPOINT_ACTION = "chain-checkpoint"
STOPPED_ACTION = "agent-stopped"  # a clean shutdown signs the log in this record's details.checkpoint


def link(previous: str, kind: str, record_json: str) -> str:
    """The chain link of one record, given the link before it."""
    digest = hashlib.sha256(bytes.fromhex(previous))
    digest.update(kind.encode("ascii") + b"\n" + record_json.encode("utf-8"))
    return digest.hexdigest()


def checkpoint_message(sequence: int, chain_hash: str, key: str) -> bytes:
    """The exact bytes a checkpoint signature covers (documented in docs/forwarding.md for SIEM-side checks)."""
    return f"weightwarden-checkpoint/1\n{key}\n{sequence}\n{chain_hash}".encode("ascii")


def signed_point(details: Mapping[str, Any]) -> tuple[int, str]:
    """The sequence and chain link a checkpoint's details sign; sequence -1 when it is not a whole number."""
    try:
        signed_sequence = int(details.get("signed_sequence", -1))
    except (TypeError, ValueError):
        signed_sequence = -1
    return signed_sequence, str(details.get("signed_hash", ""))


def checkpoint_verifies(details: Mapping[str, Any], public_key: Ed25519PublicKey, key_id: str | None) -> bool:
    """Whether a checkpoint names agent key `key_id` (that of `public_key`) and its signature verifies with it.

    The one signature check of both verifiers: the local store's (below) and the SIEM copy's
    (central_verify.py).
    """
    signed_sequence, signed_hash = signed_point(details)
    message = checkpoint_message(signed_sequence, signed_hash, str(details.get("key_id", "")))
    return details.get("key_id") == key_id and verify_signature(public_key, str(details.get("signature", "")), message)


# ------------------------------------------------------------------------------------------ reading rows


@dataclass(frozen=True, slots=True)
class ChainRow:
    sequence: int
    kind: str
    id: str
    record: str
    chain_hash: str | None
    columns: tuple[Any, ...] = ()  # the derived columns (derived.EVENT_COLUMNS or ALERT_COLUMNS)
    status: str | None = None  # alerts: the review status column
    latest: int = 1  # alerts: the latest-state flag


_EVENT_SELECT = ("select sequence, 'event' as kind, id, record, chain_hash, time, action, category, severity, model,"
                 " path, process_pid, null, 1 from events")
_ALERT_SELECT = ("select sequence, 'alert' as kind, id, record, chain_hash, time, rule_id, title, severity, model,"
                 " null, null, status, latest from alerts")
_ROWS = f"{_EVENT_SELECT} union all {_ALERT_SELECT} order by sequence, kind, id"


def chain_rows(conn: sqlite3.Connection, after: int = 0) -> Iterator[ChainRow]:
    sql = _ROWS if after <= 0 else (f"{_EVENT_SELECT} where sequence > {int(after)} union all {_ALERT_SELECT}"
                                    f" where sequence > {int(after)} order by sequence, kind, id")
    cursor = conn.execute(sql)
    while True:
        batch = cursor.fetchmany(2000)
        if not batch:
            return
        for row in batch:
            kind = row[1]
            columns = tuple(row[5:12]) if kind == "event" else tuple(row[5:10])
            yield ChainRow(int(row[0]), kind, row[2], row[3], row[4], columns, row[12], row[13])


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(sequence, link) of the newest record; (0, GENESIS) for an empty log."""
    row = conn.execute("select sequence, chain_hash from (select sequence, chain_hash from events"
                       " union all select sequence, chain_hash from alerts) order by sequence desc limit 1"
                       ).fetchone()
    if row is None:
        return 0, GENESIS
    return int(row[0]), row[1] or GENESIS


def add_chain_column(db: sqlite_utils.Database) -> None:
    """Migration: a `chain_hash` column on events and alerts, filled for the records already stored."""
    for table in ("events", "alerts"):
        db.execute(f"alter table {table} add column chain_hash text")
    previous = GENESIS
    rows = db.conn.execute("select sequence, 'event' as kind, id, record from events union all"
                           " select sequence, 'alert' as kind, id, record from alerts order by sequence, kind, id")
    for _sequence, kind, record_id, record in rows.fetchall():
        previous = link(previous, kind, record)
        db.execute(f"update {kind}s set chain_hash = ? where id = ?", [previous, record_id])


# ------------------------------------------------------------------------------------------ verification


@dataclass(frozen=True)
class Finding:
    """One break in the evidence; `problem` is altered, removed, inserted, signature, unsigned or key."""

    problem: str
    sequence: int
    record_id: str | None
    message: str


@dataclass(frozen=True)
class VerifyPolicy:
    """What `verify` demands besides an intact chain.

    `checkpoint_seconds`: the agent signs its log this often, so records it has not signed after twice that
    time (and no clean stop signed them) are a finding; None leaves the age of the unsigned tail alone.
    `now` is when the check runs (tests pass their own). `signatures=False` (`--unsigned`) checks the chain
    and the columns only.
    """

    checkpoint_seconds: float | None = None
    heartbeat_seconds: float = 60.0
    now: datetime | None = None
    signatures: bool = True


@dataclass
class VerifyReport:
    records: int = 0
    last_sequence: int = 0
    checkpoints: int = 0
    signatures_checked: int = 0
    last_signed_sequence: int = 0
    findings: list[Finding] = field(default_factory=list)
    clean_stop: bool = False  # the newest signature is a clean shutdown's and the agent has not run since
    last_time: str | None = None  # of the newest record

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def unsigned_tail(self) -> int:
        """Records after the newest verified checkpoint: protected only by their copies in the SIEM."""
        return max(0, self.last_sequence - self.last_signed_sequence)

    def rejected(self) -> dict[str, str]:
        """record id -> the first finding naming it: the rows the app and `alerts` flag."""
        named: dict[str, str] = {}
        for finding in self.findings:
            if finding.record_id and finding.record_id not in named:
                named[finding.record_id] = finding.message
        return named


def verify(conn: sqlite3.Connection, public_key: Ed25519PublicKey | None,
           policy: VerifyPolicy | None = None) -> VerifyReport:
    """Walk the chain in sequence order checking links, derived columns and, as they come, the checkpoints
    found in chained content; then the review state, and the age of what no signature covers."""
    policy = policy or VerifyPolicy()
    walk = _Walk(conn, public_key, policy)
    walk.run(_Peekable(chain_rows(conn)))
    walk.finish()
    walk.report.findings.sort(key=lambda finding: finding.sequence)
    return walk.report


class _Peekable:
    def __init__(self, rows: Iterator[ChainRow]) -> None:
        self._rows = rows
        self._next: ChainRow | None = None

    def __iter__(self) -> _Peekable:
        return self

    def __next__(self) -> ChainRow:
        if self._next is not None:
            row, self._next = self._next, None
            return row
        return next(self._rows)

    def peek(self) -> ChainRow | None:
        if self._next is None:
            self._next = next(self._rows, None)
        return self._next


_KEEP_LINKS = 65_536  # links of the newest records kept for the checkpoints that follow them


class _Walk:
    def __init__(self, conn: sqlite3.Connection, public_key: Ed25519PublicKey | None, policy: VerifyPolicy) -> None:
        self.conn = conn
        self.public_key = public_key if policy.signatures else None
        self.key_id = public_key_id(public_key) if public_key is not None else None
        self.policy = policy
        self.report = VerifyReport()
        self.links: dict[int, str] = {}
        self.deferred: list[tuple[ChainRow, dict[str, Any]]] = []
        self.reviews: list[derived.ChainedReview] = []
        self.incidents: set[str] = set()  # incidents whose status and latest flags are rebuilt at the end
        self.signed_by_stop = 0  # record sequence of the newest verified signature, negative for a stop's
        self.last_started = 0

    def found(self, problem: str, sequence: int, record_id: str | None, message: str) -> None:
        self.report.findings.append(Finding(problem, sequence, record_id, message))

    # -------------------------------------------------------------- the walk

    def run(self, rows: _Peekable) -> None:
        report = self.report
        previous, before_previous = GENESIS, None  # stored links of the last two accepted rows
        previous_row: ChainRow | None = None
        expected = 1
        for row in rows:
            report.records += 1
            report.last_sequence = max(report.last_sequence, row.sequence)
            if row.chain_hash == link(previous, row.kind, row.record):
                data, problem = self._content(row)
                if problem or row.sequence != expected:
                    problem = problem or f"its sequence column says {row.sequence}, the chain puts it at {expected}"
                    self.found("altered", row.sequence, row.id,
                               f"record {row.sequence} ({row.kind} {row.id}) was altered: {problem}")
            else:
                data, _problem = self._content(row)
                following = rows.peek()
                if row.sequence < expected or (
                        following is not None
                        and following.chain_hash == link(previous, following.kind, following.record)):
                    self.found("inserted", row.sequence, row.id,
                               f"record {row.sequence} ({row.kind} {row.id}) was inserted: it is not part of the "
                               "chain" + (f" after record {previous_row.sequence} ({previous_row.id})"
                                          if previous_row else ""))
                    continue  # skip it: the chain goes on from the row before
                if (before_previous is not None and previous_row is not None
                        and row.chain_hash == link(before_previous, row.kind, row.record)):
                    self.found("inserted", previous_row.sequence, previous_row.id,
                               f"record {previous_row.sequence} ({previous_row.kind} {previous_row.id}) was "
                               "inserted: the record after it links past it")
                elif row.sequence > expected:
                    gap = f"{expected}" if row.sequence == expected + 1 else f"{expected}..{row.sequence - 1}"
                    after = f" after record {previous_row.sequence} ({previous_row.id})" if previous_row else ""
                    self.found("removed", expected, None,
                               f"record(s) {gap} were removed{after}, before record {row.sequence} ({row.id})")
                else:
                    self.found("altered", row.sequence, row.id,
                               f"record {row.sequence} ({row.kind} {row.id}) was altered: its content no longer "
                               "matches its chain link")
            if data is not None:
                self._observe(row, data)
            before_previous, previous, previous_row = previous, row.chain_hash or GENESIS, row
            expected = row.sequence + 1
            self.links[row.sequence] = previous
            if len(self.links) > 2 * _KEEP_LINKS:
                self.links = {s: h for s, h in self.links.items() if s > row.sequence - _KEEP_LINKS}

    def _content(self, row: ChainRow) -> tuple[dict[str, Any] | None, str | None]:
        """The chained record, and what disagrees with it among the row's own columns."""
        try:
            data = json.loads(row.record)
        except ValueError:
            return None, "its record is not JSON"
        if not isinstance(data, dict):
            return None, "its record is not a JSON object"
        if data.get("id") != row.id:
            return data, f"its id column says {row.id}, the chained record says {data.get('id')}"
        if data.get("sequence") != row.sequence:
            return data, f"its sequence column says {row.sequence}, the chained record says {data.get('sequence')}"
        return data, derived.column_problem(row.kind, data, row.columns)

    def _observe(self, row: ChainRow, data: dict[str, Any]) -> None:
        """What the end of the walk needs from one record: review state, checkpoints, the newest time."""
        time_text = data.get("time")
        if isinstance(time_text, str) and (self.report.last_time is None or row.sequence >= self.report.last_sequence):
            self.report.last_time = time_text
        if row.kind == "alert":
            incident = derived.incident_of(data)
            if incident != row.id or (row.status or "open") != (data.get("status") or "open") or row.latest != 1:
                self.incidents.add(incident)
            return
        action = derived.chained_action(row.kind, data)
        if action == derived.REVIEWED_ACTION:
            details = data.get("details")
            if isinstance(details, dict):
                self.reviews.append(derived.ChainedReview(row.sequence, details))
        elif action == "agent-started":
            self.last_started = row.sequence
        signed = derived.checkpoint_details(row.kind, data)
        if signed is not None:
            self.report.checkpoints += 1
            self._checkpoint(row, signed, action == "agent-stopped")

    # -------------------------------------------------------------- checkpoints

    def _checkpoint(self, row: ChainRow, details: dict[str, Any], stop: bool, *, deferred: bool = False) -> None:
        report = self.report
        signed_sequence, signed_hash = signed_point(details)
        where = f"checkpoint {row.sequence} ({row.id})"
        if signed_sequence >= row.sequence and not deferred:
            self.deferred.append((row, {**details, "_stop": stop}))
            return
        if signed_sequence > report.last_sequence:
            self.found("removed", report.last_sequence + 1, None,
                       f"record(s) {report.last_sequence + 1}..{signed_sequence} were removed: {where} signed record "
                       f"{signed_sequence} but the log ends at {report.last_sequence}")
            return
        if self.public_key is None:
            return
        report.signatures_checked += 1
        if not checkpoint_verifies(details, self.public_key, self.key_id):
            self.found("signature", row.sequence, row.id,
                       f"{where}: signature does not verify with agent key {self.key_id}")
            return
        if signed_sequence > 0 and self._link_at(signed_sequence) != signed_hash:
            self.found("altered", signed_sequence, None,
                       f"record {signed_sequence} or one before it was altered: its chain link differs from the one "
                       f"signed by {where}")
            return
        report.last_signed_sequence = max(report.last_signed_sequence, signed_sequence)
        if row.sequence >= abs(self.signed_by_stop):
            self.signed_by_stop = -row.sequence if stop else row.sequence

    def _link_at(self, sequence: int) -> str | None:
        if sequence in self.links:
            return self.links[sequence]
        rows = self.conn.execute("select chain_hash from events where sequence = ? union all"
                                 " select chain_hash from alerts where sequence = ?", [sequence, sequence]).fetchall()
        return rows[0][0] if len(rows) == 1 else None

    # -------------------------------------------------------------- after the walk

    def finish(self) -> None:
        for row, details in self.deferred:
            self._checkpoint(row, details, bool(details.pop("_stop")), deferred=True)
        self._review_state()
        if self.public_key is not None:
            self._tail()

    def _review_state(self) -> None:
        by_incident: dict[str, list[derived.ChainedReview]] = {}
        for review in self.reviews:
            row = self.conn.execute("select incident from alerts where id = ?", [review.review.get("alert_id")]
                                    ).fetchone()
            if row is not None:
                by_incident.setdefault(row[0], []).append(review)
        for incident in sorted(self.incidents | set(by_incident)):
            for problem in derived.replay_incident(derived.incident_rows(self.conn, incident),
                                                   by_incident.get(incident, [])):
                self.found("altered", problem.sequence, problem.record_id,
                           f"record {problem.sequence} (alert {problem.record_id}) was altered: {problem.message}")
        now = self.policy.now or utc_now()
        for problem in derived.review_table_problems(self.conn, self.reviews, now=now,
                                                     newest_chained_time=self.report.last_time or ""):
            self.found("altered" if problem.sequence else "inserted", problem.sequence, problem.record_id,
                       problem.message)

    def _tail(self) -> None:
        """Records no signature covers, older than the agent would have let them be: a killed agent, or a tail
        rewritten or removed. A clean stop signs everything before it, and nothing runs after it."""
        report, policy = self.report, self.policy
        report.clean_stop = self.signed_by_stop < 0 and self.last_started < -self.signed_by_stop
        if policy.checkpoint_seconds is None or report.clean_stop or report.records == 0:
            return
        now = policy.now or utc_now()
        limit = timedelta(seconds=2 * policy.checkpoint_seconds)
        oldest = self._oldest_unsigned()
        if oldest is not None:
            sequence, moment = oldest
            age = now - moment
            if age > limit or -age > limit:
                self.found("unsigned", sequence, None,
                           f"records {sequence}..{report.last_sequence} are covered by no signature and the oldest "
                           f"is dated {format_time(moment)} ({_age(age)}), more than twice the checkpoint interval "
                           f"({policy.checkpoint_seconds:g} s), with no clean stop after them: the agent was killed, "
                           "or these records were rewritten or the log after them removed (compare with the SIEM's "
                           "copy: verify --against)")
            return
        try:
            newest = parse_time(report.last_time or "")
        except ValueError:
            return
        quiet = timedelta(seconds=2 * max(policy.checkpoint_seconds, policy.heartbeat_seconds))
        if now - newest > quiet:
            self.found("unsigned", report.last_sequence + 1, None,
                       f"the log ends at record {report.last_sequence} ({format_time(newest)}, {_age(now - newest)}) "
                       "without a clean stop: the agent was killed, or the records after it were removed (compare "
                       "with the SIEM's copy: verify --against)")

    def _oldest_unsigned(self) -> tuple[int, datetime] | None:
        """The first record after the newest signed one that is not itself a checkpoint; None if there is none."""
        for row in chain_rows(self.conn, after=self.report.last_signed_sequence):
            try:
                data = json.loads(row.record)
                if derived.chained_action(row.kind, data) == "chain-checkpoint":
                    continue
                return row.sequence, parse_time(str(data.get("time")))
            except (ValueError, AttributeError):
                return row.sequence, datetime.min.replace(tzinfo=UTC)
        return None


def _age(age: timedelta) -> str:
    seconds = age.total_seconds()
    if seconds < 0:
        return f"{-seconds:.0f} s in the future"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
