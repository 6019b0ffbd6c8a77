"""SQLite through sqlite-utils: WAL, migrations on open, batched writes, and the read API.

One connection per Store, guarded by a lock, so the agent's threads share it safely. Readers (the CLI,
the app) open with `read_only=True`: they never migrate and never write.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import sqlite_utils

from weightwarden.agent.events import (
    Alert,
    Event,
    ModelFile,
    Provenance,
    Record,
    display_path,
    format_time,
    raw_path_hex,
)
from weightwarden.agent.fingerprint.cache import CachedResult, FileKey
from weightwarden.agent.store import chain, migrations, tensor_store
from weightwarden.agent.store.review_queries import AlertReview


class StoreError(RuntimeError):
    """The database cannot be opened or used as asked (missing, unreadable, newer schema)."""


class Store:
    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        try:
            self._conn = self._connect()
            self.db = sqlite_utils.Database(self._conn)
            if read_only:
                if migrations.pending(self.db):
                    raise StoreError(f"{self.path}: database schema is older than this version; "
                                     "start the agent once to migrate it")
            else:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
                migrations.migrate(self.db)
        except migrations.SchemaTooNewError as error:
            raise StoreError(f"{self.path}: {error}") from None
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: {error}") from None
        self._sequence = self._max_sequence()
        self._chain_head = chain.head(self._conn)[1]
        # Alert review (paged/filtered reads for the app, justifications and status changes).
        self.review = AlertReview(self._conn, self._lock, read_only=read_only)

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            if not self.path.exists():
                raise StoreError(f"{self.path}: no database yet (has the agent run?)")
            uri = f"file:{self.path}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ writes

    def write(self, records: Sequence[Record]) -> list[Record]:
        """Store records in one transaction, assigning each the next sequence number; returns them."""
        if not records:
            return []
        with self._lock, self._conn:
            stored: list[Record] = []
            for record in records:
                self._sequence += 1
                stored.append(dataclasses.replace(record, sequence=self._sequence))
            events: list[dict[str, Any]] = []
            alerts: list[dict[str, Any]] = []
            head = self._chain_head
            for record in stored:  # the hash chain, linked in sequence order inside this transaction
                row = _event_row(record) if isinstance(record, Event) else _alert_row(record)
                head = row["chain_hash"] = chain.link(head, record.kind, row["record"])
                (events if isinstance(record, Event) else alerts).append(row)
            try:
                if events:
                    self.db.table("events").insert_all(events)
                if alerts:
                    self.db.table("alerts").insert_all(alerts)
            except BaseException:
                self._sequence = self._max_sequence()
                raise
            self._chain_head = head
        return stored

    def upsert_model_files(self, files: Iterable[ModelFile], *, seen: datetime) -> None:
        files = list(files)  # read twice: the rows, then the tensor prints
        when = format_time(seen)
        rows = [{
            "path": f.shown, "path_hex": raw_path_hex(f.path), "device": f.device, "inode": f.inode, "size": f.size,
            "mtime_ns": f.mtime_ns, "format": f.format, "sha256": f.sha256,
            "quick_fingerprint": f.quick_fingerprint, "model": f.model, "details": json.dumps(f.details),
            "last_seen": when, "present": 1, **_provenance_columns(f.provenance),
        } for f in files]
        if not rows:
            return
        with self._lock, self._conn:
            existing = {row["path"] for row in self.db.query(
                "select path from model_files where path in (select value from json_each(?))",
                [json.dumps([r["path"] for r in rows])])}
            for row in rows:
                if row["path"] not in existing:
                    row["first_seen"] = when
            self.db.table("model_files").upsert_all(rows, pk="path")
            tensor_store.replace_model_tensors(self.db, {f.shown: f.tensors for f in files})

    def mark_model_files_gone(self, paths: Iterable[str]) -> None:
        """Files (by identity, ModelFile.path) no longer there."""
        with self._lock, self._conn:
            self.db.execute(
                "update model_files set present = 0 where path in (select value from json_each(?))",
                [json.dumps([display_path(p) for p in paths])])

    def save_file_cache(self, entries: dict[FileKey, CachedResult]) -> None:
        # Plain executemany: a first scan caches a verdict per file (10,000s of rows), and sqlite-utils'
        # upsert_all costs about 100 µs a row against a few µs here. Empty details are stored as NULL.
        rows = [(k.device, k.inode, k.size, k.mtime_ns, v.format, v.sha256, v.quick_fingerprint,
                 json.dumps(v.details) if v.details else None) for k, v in entries.items()]
        if rows:
            with self._lock, self._conn:
                self._conn.executemany(
                    "insert or replace into file_cache (device, inode, size, mtime_ns, format, sha256,"
                    " quick_fingerprint, details) values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                tensor_store.save_cache_tensors(self.db, [
                    {"device": k.device, "inode": k.inode, "size": k.size, "mtime_ns": k.mtime_ns,
                     "tensors": tensor_store.encode(v.tensors)} for k, v in entries.items() if v.tensors])

    def set_state(self, key: str, value: str) -> None:
        with self._lock, self._conn:
            self.db.table("agent_state").upsert({"key": key, "value": value}, pk="key")

    # ------------------------------------------------------------------ reads

    def state(self, key: str) -> str | None:
        with self._lock:
            rows = list(self.db.query("select value from agent_state where key = ?", [key]))
        return rows[0]["value"] if rows else None

    def load_file_cache(self, blocks: dict[str, bytes] | None = None) -> dict[FileKey, CachedResult]:
        """`blocks`: corners already in memory by tensor fingerprint (tensor_store.shared_blocks), reused."""
        with self._lock:
            tensors = tensor_store.load_cache_tensors(self.db, blocks)
            rows = self._conn.execute(
                "select device, inode, size, mtime_ns, format, sha256, quick_fingerprint, details"
                " from file_cache").fetchall()
        # Tuples, not sqlite-utils dicts, and most rows are "not a model" with nothing to decode: loading
        # the cache is the fixed cost of every rescan, so it must stay far below the scan it saves.
        not_a_model = CachedResult(None)
        cache: dict[FileKey, CachedResult] = {}
        for device, inode, size, mtime_ns, fmt, sha256, quick, details in rows:
            # A plain tuple equals and hashes like the FileKey it stands for, and costs a third as much.
            key = cast(FileKey, (device, inode, size, mtime_ns))
            if fmt is None and details is None:
                cache[key] = not_a_model
            else:
                cache[key] = CachedResult(fmt, sha256, quick, json.loads(details) if details else {},
                                          tensors.get(key, ()))
        return cache

    def model_files(self, *, present_only: bool = True) -> list[ModelFile]:
        where = "where present = 1" if present_only else ""
        with self._lock:
            rows = list(self.db.query(f"select * from model_files {where} order by path"))
            tensors = tensor_store.load_model_tensors(self.db)
        return [dataclasses.replace(_model_file(row), tensors=tensors.get(row["path"], ())) for row in rows]

    def events(self, *, since: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return self._records("events", since, limit)

    def alerts(self, *, since: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored alert records (Alert.to_dict() shape, `alerts --json`); their typed evidence is
        `alert_evidence.evidence_from(record["evidence"])`, as `AlertRow.evidence` gives it to the app."""
        return self._records("alerts", since, limit)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {table: self.db.table(table).count for table in ("events", "alerts", "model_files")}

    def last_sequence(self) -> int:
        return self._sequence

    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _records(self, table: str, since: datetime | None, limit: int | None) -> list[dict[str, Any]]:
        where, params = "", []
        if since is not None:
            where, params = " where time >= ?", [format_time(since)]
        if limit is None:
            sql = f"select record from {table}{where} order by sequence"
        else:  # the newest `limit` records, still listed oldest first
            sql = (f"select record from (select record, sequence from {table}{where}"
                   " order by sequence desc limit ?) order by sequence")
            params.append(str(limit))
        with self._lock:
            return [json.loads(row["record"]) for row in self.db.query(sql, params)]

    def chain_head(self) -> tuple[int, str]:
        """(sequence, link) of the newest committed record: what a checkpoint signs."""
        with self._lock:
            return self._sequence, self._chain_head

    def verify_chain(self, public_key: Any, policy: chain.VerifyPolicy | None = None) -> chain.VerifyReport:
        with self._lock:
            return chain.verify(self._conn, public_key, policy)

    def records_in_order(self) -> Iterator[tuple[int, str, str, dict[str, Any]]]:
        """(sequence, kind, id, record) of every stored record in chain order (`verify --against`)."""
        with self._lock:
            for row in chain.chain_rows(self._conn):
                try:
                    record = json.loads(row.record)
                except ValueError:
                    record = {}
                yield row.sequence, row.kind, row.id, record if isinstance(record, dict) else {}

    def rejected_alerts(self, ids: Sequence[str]) -> dict[str, str]:
        """Alerts among `ids` that verify would reject (columns, link, review status): id -> why."""
        return self.review.rejected(ids)

    def _max_sequence(self) -> int:
        with self._lock:
            row = self._conn.execute(
                "select max(coalesce((select max(sequence) from events), 0),"
                " coalesce((select max(sequence) from alerts), 0))").fetchone()
        return int(row[0] or 0)


def _event_row(event: Event) -> dict[str, Any]:
    return {
        "id": event.id, "sequence": event.sequence, "time": format_time(event.time),
        "action": str(event.action), "category": str(event.category), "severity": event.severity,
        "model": event.model, "path": event.file.path if event.file else None,
        "process_pid": event.process.pid if event.process else None,
        "record": json.dumps(event.to_dict(), sort_keys=True),
    }


def _alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id, "sequence": alert.sequence, "time": format_time(alert.time), "rule_id": alert.rule_id,
        "severity": alert.severity, "title": alert.title, "model": alert.model, "status": alert.status,
        "record": json.dumps(alert.to_dict(), sort_keys=True),
    }


def _model_file(row: dict[str, Any]) -> ModelFile:
    # The path column is display text; a name that is not UTF-8 gets its identity back from its raw bytes.
    path = os.fsdecode(bytes.fromhex(row["path_hex"])) if row["path_hex"] else row["path"]
    return ModelFile(
        path=path, format=row["format"], size=row["size"], model=row["model"], sha256=row["sha256"],
        quick_fingerprint=row["quick_fingerprint"], device=row["device"], inode=row["inode"],
        mtime_ns=row["mtime_ns"], path_hex=row["path_hex"], details=json.loads(row["details"] or "{}"),
        provenance=_provenance(row),
    )


def _provenance_columns(provenance: Provenance | None) -> dict[str, Any]:
    if provenance is None:
        return {"found_by": None, "found_where": None, "found_pass": None, "protected": 1, "protect_reason": None}
    return {"found_by": provenance.found_by, "found_where": provenance.where, "found_pass": provenance.pass_number,
            "protected": int(provenance.protected), "protect_reason": provenance.reason}


def _provenance(row: dict[str, Any]) -> Provenance | None:
    """None for rows written before migration 0011 or by `scan` (no policy ran): protected, finder unknown."""
    if not row.get("found_by"):
        return None
    return Provenance(row["found_by"], row.get("found_where"), row.get("found_pass"), bool(row.get("protected", 1)),
                      row.get("protect_reason") or "")
