"""Named, ordered schema migrations. Append new ones at the end; never edit or reorder a released one.

The applied names are recorded in `_migrations`; PRAGMA user_version mirrors their count so other
tools (and the app, read-only) can tell the schema version without knowing our table layout.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from weightwarden.agent.events import format_time, utc_now
from weightwarden.agent.store import chain, incidents, outbox, review_schema, tensor_store

Migration = tuple[str, Callable[[sqlite_utils.Database], None]]


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer Weightwarden: refuse rather than corrupt it."""


def _initial(db: sqlite_utils.Database) -> None:
    db.table("events").create(
        {"id": str, "sequence": int, "time": str, "action": str, "category": str, "severity": int,
         "model": str, "path": str, "process_pid": int, "record": str},
        pk="id",
    )
    db.table("events").create_index(["sequence"], unique=True)
    db.table("events").create_index(["time"])
    db.table("alerts").create(
        {"id": str, "sequence": int, "time": str, "rule_id": str, "severity": int, "title": str,
         "model": str, "status": str, "record": str},
        pk="id",
    )
    db.table("alerts").create_index(["sequence"], unique=True)
    db.table("alerts").create_index(["time"])
    db.table("alerts").create_index(["rule_id"])
    db.table("model_files").create(
        {"path": str, "path_hex": str, "device": int, "inode": int, "size": int, "mtime_ns": int,
         "format": str, "sha256": str, "quick_fingerprint": str, "model": str, "details": str,
         "first_seen": str, "last_seen": str, "present": int},
        pk="path",
    )
    db.table("model_files").create_index(["quick_fingerprint"])
    db.table("model_files").create_index(["sha256"])
    db.table("file_cache").create(
        {"device": int, "inode": int, "size": int, "mtime_ns": int, "format": str, "sha256": str,
         "quick_fingerprint": str, "details": str},
        pk=("device", "inode", "size", "mtime_ns"),
    )
    db.table("agent_state").create({"key": str, "value": str}, pk="key")


def model_file_provenance(db: sqlite_utils.Database) -> None:
    """Where each model file was found and whether it is protected (agent/models/protection.py). Columns,
    not details: the app and `models` filter and count by them, and rows of older agents read as protected
    (everything they inventoried was) with no finder recorded."""
    db.execute("alter table model_files add column found_by text")
    db.execute("alter table model_files add column found_where text")
    db.execute("alter table model_files add column found_pass integer")
    db.execute("alter table model_files add column protected integer not null default 1")
    db.execute("alter table model_files add column protect_reason text")


MIGRATIONS: list[Migration] = [
    ("0001_initial", _initial),
    ("0002_alert_search", review_schema.alert_search),
    ("0003_alert_reviews", review_schema.alert_reviews),
    ("0004_hash_chain", chain.add_chain_column),
    ("0005_forward_outbox", outbox.create_outbox_tables),
    ("0006_tensor_fingerprints", tensor_store.create_tensor_tables),
    ("0007_events_by_path", review_schema.lineage_index),
    ("0008_alert_incidents", incidents.alert_incidents),
    ("0009_forward_budget_bytes", outbox.add_budget_count),
    ("0010_alert_review_indexes", review_schema.review_indexes),
    ("0011_model_file_provenance", model_file_provenance),
    ("0012_similarity_blocks", tensor_store.similarity_blocks),
]


def applied(db: sqlite_utils.Database) -> list[str]:
    if "_migrations" not in db.table_names():
        return []
    return [row["name"] for row in db.table("_migrations").rows_where(order_by="rowid")]


def pending(db: sqlite_utils.Database) -> list[Migration]:
    done = applied(db)
    known = [name for name, _ in MIGRATIONS]
    unknown = [name for name in done if name not in known]
    if unknown:
        raise SchemaTooNewError(
            f"database schema has migrations this version does not know ({', '.join(unknown)}): "
            "it was written by a newer Weightwarden; refusing to downgrade it"
        )
    return [migration for migration in MIGRATIONS if migration[0] not in done]


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns the names applied."""
    names = []
    for name, apply in pending(db):
        with db.conn:
            if "_migrations" not in db.table_names():
                db.table("_migrations").create({"name": str, "applied_at": str}, pk="name")
            apply(db)
            db.table("_migrations").insert({"name": name, "applied_at": format_time(utc_now())})
            db.execute(f"PRAGMA user_version = {len(applied(db))}")
        names.append(name)
    return names

