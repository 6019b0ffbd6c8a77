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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from weightwarden.agent.keys import key_id as public_key_id
from weightwarden.agent.keys import verify_signature

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


# ------------------------------------------------------------------------------------------ reading rows


@dataclass(frozen=True, slots=True)
class ChainRow:
    sequence: int
    kind: str
    id: str
    record: str
    chain_hash: str | None


_ROWS = ("select sequence, 'event' as kind, id, record, chain_hash from events"
         " union all select sequence, 'alert' as kind, id, record, chain_hash from alerts"
         " order by sequence, kind, id")


def chain_rows(conn: sqlite3.Connection) -> Iterator[ChainRow]:
    cursor = conn.execute(_ROWS)
    while True:
        batch = cursor.fetchmany(2000)
        if not batch:
            return
        for row in batch:
            yield ChainRow(int(row[0]), row[1], row[2], row[3], row[4])


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(sequence, link) of the newest record; (0, GENESIS) for an empty log."""
    row = conn.execute("select sequence, chain_hash from (select sequence, chain_hash from events"
                       " union all select sequence, chain_hash from alerts) order by sequence desc limit 1"
                       ).fetchone()
    if row is None:
        return 0, GENESIS
    return int(row[0]), row[1] or GENESIS


def checkpoint_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Checkpoint records, and agent-stopped records carrying the shutdown signature in details.checkpoint;
    each returned with the signed fields as its `details`."""
    rows = conn.execute("select record from events where action in (?, ?) order by sequence",
                        [CHECKPOINT_ACTION, STOPPED_ACTION])
    found = []
    for (text,) in rows:
        record = json.loads(text)
        details = record.get("details") or {}
        if record.get("event", {}).get("action") == STOPPED_ACTION:
            if "checkpoint" not in details:
                continue
            record = {**record, "details": details["checkpoint"]}
        found.append(record)
    return found


def add_chain_column(db: sqlite_utils.Database) -> None:
    """Migration: a `chain_hash` column on events and alerts, filled for the records already stored."""
    for table in ("events", "alerts"):
        db.execute(f"alter table {table} add column chain_hash text")
    previous = GENESIS
    for row in list(chain_rows(db.conn)):
        previous = link(previous, row.kind, row.record)
        db.execute(f"update {row.kind}s set chain_hash = ? where id = ?", [previous, row.id])


# ------------------------------------------------------------------------------------------ verification


@dataclass(frozen=True)
class Finding:
    """One break in the evidence; `problem` is altered, removed, inserted, or signature."""

    problem: str
    sequence: int
    record_id: str | None
    message: str


@dataclass
class VerifyReport:
    records: int = 0
    last_sequence: int = 0
    checkpoints: int = 0
    signatures_checked: int = 0
    last_signed_sequence: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def unsigned_tail(self) -> int:
        """Records after the newest verified checkpoint: protected only by their copies in the SIEM."""
        return max(0, self.last_sequence - self.last_signed_sequence)


def verify(conn: sqlite3.Connection, public_key: Ed25519PublicKey | None) -> VerifyReport:
    """Walk the chain in sequence order, then check each checkpoint against it and the agent key."""
    checkpoints = checkpoint_rows(conn)
    wanted = {int(cp.get("details", {}).get("signed_sequence", -1)) for cp in checkpoints}
    report = VerifyReport()
    seen_links = _walk(_Peekable(chain_rows(conn)), report, wanted)
    _check_checkpoints(checkpoints, seen_links, public_key, report)
    report.findings.sort(key=lambda finding: finding.sequence)
    return report


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


def _walk(rows: _Peekable, report: VerifyReport, wanted: set[int]) -> dict[int, str]:
    links: dict[int, str] = {}
    previous, before_previous = GENESIS, None  # stored links of the last two accepted rows
    previous_row: ChainRow | None = None
    expected = 1
    for row in rows:
        report.records += 1
        report.last_sequence = max(report.last_sequence, row.sequence)
        if row.chain_hash == link(previous, row.kind, row.record):
            problem = _column_problem(row)
            if problem or row.sequence != expected:
                report.findings.append(Finding(
                    "altered", row.sequence, row.id,
                    f"record {row.sequence} ({row.kind} {row.id}) was altered: "
                    f"{problem or f'its sequence column says {row.sequence}, the chain puts it at {expected}'}"))
        else:
            following = rows.peek()
            if row.sequence < expected or (
                    following is not None and following.chain_hash == link(previous, following.kind, following.record)):
                report.findings.append(Finding(
                    "inserted", row.sequence, row.id,
                    f"record {row.sequence} ({row.kind} {row.id}) was inserted: it is not part of the chain"
                    + (f" after record {previous_row.sequence} ({previous_row.id})" if previous_row else "")))
                continue  # skip it: the chain goes on from the row before
            if (before_previous is not None and previous_row is not None
                    and row.chain_hash == link(before_previous, row.kind, row.record)):
                report.findings.append(Finding(
                    "inserted", previous_row.sequence, previous_row.id,
                    f"record {previous_row.sequence} ({previous_row.kind} {previous_row.id}) was inserted: "
                    f"the record after it links past it"))
            elif row.sequence > expected:
                gap = f"{expected}" if row.sequence == expected + 1 else f"{expected}..{row.sequence - 1}"
                after = f" after record {previous_row.sequence} ({previous_row.id})" if previous_row else ""
                report.findings.append(Finding(
                    "removed", expected, None,
                    f"record(s) {gap} were removed{after}, before record {row.sequence} ({row.id})"))
            else:
                report.findings.append(Finding(
                    "altered", row.sequence, row.id,
                    f"record {row.sequence} ({row.kind} {row.id}) was altered: its content no longer matches "
                    "its chain link"))
        before_previous, previous, previous_row = previous, row.chain_hash or GENESIS, row
        expected = row.sequence + 1
        if row.sequence in wanted:
            links[row.sequence] = previous
    return links


def _column_problem(row: ChainRow) -> str | None:
    """The chained JSON is the truth; the id/sequence columns must agree with it."""
    try:
        data = json.loads(row.record)
    except ValueError:
        return "its record is not JSON"
    if data.get("id") != row.id:
        return f"its id column says {row.id}, the chained record says {data.get('id')}"
    if data.get("sequence") != row.sequence:
        return f"its sequence column says {row.sequence}, the chained record says {data.get('sequence')}"
    return None


def _check_checkpoints(checkpoints: list[dict[str, Any]], links: dict[int, str],
                       public_key: Ed25519PublicKey | None, report: VerifyReport) -> None:
    expected_key = public_key_id(public_key) if public_key is not None else None
    for checkpoint in checkpoints:
        report.checkpoints += 1
        details = checkpoint.get("details", {})
        signed_sequence = int(details.get("signed_sequence", -1))
        signed_hash = str(details.get("signed_hash", ""))
        where = f"checkpoint {checkpoint.get('sequence')} ({checkpoint.get('id')})"
        if signed_sequence > report.last_sequence:
            report.findings.append(Finding(
                "removed", report.last_sequence + 1, None,
                f"record(s) {report.last_sequence + 1}..{signed_sequence} were removed: {where} signed record "
                f"{signed_sequence} but the log ends at {report.last_sequence}"))
            continue
        if public_key is None:
            continue
        report.signatures_checked += 1
        message = checkpoint_message(signed_sequence, signed_hash, str(details.get("key_id", "")))
        if details.get("key_id") != expected_key or not verify_signature(
                public_key, str(details.get("signature", "")), message):
            report.findings.append(Finding(
                "signature", int(checkpoint.get("sequence", 0)), checkpoint.get("id"),
                f"{where}: signature does not verify with agent key {expected_key}"))
            continue
        if signed_sequence > 0 and links.get(signed_sequence) != signed_hash:
            report.findings.append(Finding(
                "altered", signed_sequence, None,
                f"record {signed_sequence} or one before it was altered: its chain link differs from the one "
                f"signed by {where}"))
            continue
        report.last_signed_sequence = max(report.last_signed_sequence, signed_sequence)
