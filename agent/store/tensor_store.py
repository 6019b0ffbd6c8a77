"""Tensor fingerprints in SQLite: one row per tensor of each model file (indexed by fingerprint, so "which
models hold this tensor?" is one query), and the cached prints of every examined file by file identity."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from weightwarden.agent.events import ModelFile, TensorPrint
from weightwarden.agent.store.sql import run_script

CACHE_KEY = ("device", "inode", "size", "mtime_ns")


def create_tensor_tables(db: sqlite_utils.Database) -> None:
    """Migration 0006: model_tensors and file_cache_tensors."""
    run_script(db,
        """
        CREATE TABLE "model_tensors" (
           "path" TEXT,
           "position" INTEGER,
           "fingerprint" TEXT,
           "elements" INTEGER,
           "bytes" INTEGER,
           "informative" INTEGER,
           PRIMARY KEY ("path", "position")
        );
        CREATE INDEX "idx_model_tensors_fingerprint" ON "model_tensors" ("fingerprint");
        CREATE TABLE "file_cache_tensors" (
           "device" INTEGER,
           "inode" INTEGER,
           "size" INTEGER,
           "mtime_ns" INTEGER,
           "tensors" TEXT,
           PRIMARY KEY ("device", "inode", "size", "mtime_ns")
        );
        """
    )


def similarity_blocks(db: sqlite_utils.Database) -> None:
    """Migration 0012: each tensor's name and similarity block (agent/fingerprint/blocks.py). Model files
    examined before have no blocks: their cached verdicts go, so the next scan prints them again."""
    db.execute("alter table model_tensors add column name text")
    db.execute("alter table model_tensors add column block blob")
    db.execute("delete from file_cache where format is not null")
    db.execute("delete from file_cache_tensors")


def encode(prints: Iterable[TensorPrint]) -> str:
    return json.dumps([[p.fingerprint, p.elements, p.bytes, int(p.informative), p.name,
                        base64.b64encode(p.block).decode("ascii")] for p in prints], separators=(",", ":"))


def decode(text: str | None, blocks: dict[str, bytes] | None = None) -> tuple[TensorPrint, ...]:
    """The prints encoded in `text`; a corner also in `blocks` (by fingerprint) is that bytes object."""
    if not text:
        return ()
    shared = blocks or {}
    return tuple(TensorPrint(str(fp), int(elements), int(size), bool(informative), str(name),
                             shared.get(fp) or base64.b64decode(block))
                 for fp, elements, size, informative, name, block in json.loads(text))


def shared_blocks(files: Iterable[ModelFile]) -> dict[str, bytes]:
    """The corners of `files` by tensor fingerprint, for decode() to reuse (a tensor's exact print is
    determined by its values' signs, so equal prints have corners equal up to float rounding)."""
    return {t.fingerprint: t.block for f in files for t in f.tensors if t.block}


def replace_model_tensors(db: sqlite_utils.Database, files: dict[str, tuple[TensorPrint, ...]]) -> None:
    """Set the tensor rows of each path in `files` (inside the caller's transaction)."""
    if not files:
        return
    db.execute("delete from model_tensors where path in (select value from json_each(?))",
               [json.dumps(list(files))])
    rows = [{"path": path, "position": index, "fingerprint": p.fingerprint, "elements": p.elements,
             "bytes": p.bytes, "informative": int(p.informative), "name": p.name, "block": p.block or None}
            for path, prints in files.items() for index, p in enumerate(prints)]
    if rows:
        db.table("model_tensors").insert_all(rows, pk=("path", "position"))


def load_model_tensors(db: sqlite_utils.Database) -> dict[str, tuple[TensorPrint, ...]]:
    found: dict[str, list[TensorPrint]] = {}
    for row in db.query("select path, fingerprint, elements, bytes, informative, name, block from model_tensors "
                        "order by path, position"):
        found.setdefault(row["path"], []).append(
            TensorPrint(row["fingerprint"], row["elements"], row["bytes"], bool(row["informative"]),
                        row["name"] or "", row["block"] or b""))
    return {path: tuple(prints) for path, prints in found.items()}


def save_cache_tensors(db: sqlite_utils.Database, rows: list[dict[str, Any]]) -> None:
    """`rows`: the file cache key columns plus `tensors` (encoded); only files that have prints."""
    if rows:
        db.table("file_cache_tensors").upsert_all(rows, pk=CACHE_KEY)


def load_cache_tensors(db: sqlite_utils.Database, blocks: dict[str, bytes] | None = None,
                       ) -> dict[tuple[int, int, int, int], tuple[TensorPrint, ...]]:
    return {(r["device"], r["inode"], r["size"], r["mtime_ns"]): decode(r["tensors"], blocks)
            for r in db.query("select * from file_cache_tensors")}
