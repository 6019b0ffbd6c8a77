"""`weightwarden scan PATH... [--json]`: find every model artifact under the paths."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from weightwarden.agent.cli.output import (
    EXIT_OK,
    ProgressLine,
    UsageError,
    add_config_options,
    config_from,
    human_size,
    print_table,
)
from weightwarden.agent.events import ModelFile, display_path, utc_now
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.scanner import Scanner, ScanStats
from weightwarden.agent.store import Store, StoreError
from weightwarden.agent.walk import ScanIssue


def register(commands: Any) -> None:
    parser = commands.add_parser("scan", help="find model artifacts under paths",
                                 description="Identify model files by content under PATHs and fingerprint them.")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--json", action="store_true", help="one JSON object per model artifact")
    add_config_options(parser)
    parser.add_argument("--no-cache", action="store_true",
                        help="neither use nor update the database (look at every file afresh)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        raise UsageError(f"no such file or directory: {display_path(missing[0])}")
    config = config_from(args)
    store = None if args.no_cache else _open_store(config.database_path)
    cache = FingerprintCache(store.load_file_cache() if store else None)
    scanner = Scanner(Identifier(window_bytes=config.scan.window_bytes, tail_bytes=config.scan.tail_bytes),
                      cache, hash_block_bytes=config.scan.hash_block_bytes,
                      hash_sparse_files=config.scan.hash_sparse_files, workers=config.scan.workers)
    progress = ProgressLine(enabled=not args.json and sys.stdout.isatty())
    stats = ScanStats()
    found: list[ModelFile] = []
    try:
        for item in scanner.scan(args.paths, exclude_dirs=config.inventory.exclude_dirs, stats=stats,
                                 on_progress=lambda s: progress.update(
                                     f"scanning: {s.files:,} files, {human_size(s.bytes)}, {s.models} models")):
            if isinstance(item, ScanIssue):
                progress.close()
                print(f"weightwarden: {item.path}: {item.reason}", file=sys.stderr)
            else:
                found.append(item)
                if args.json:
                    print(json.dumps(item.to_dict(), sort_keys=True), flush=True)
    finally:
        progress.close()
        if store is not None:
            store.save_file_cache(cache.drain_unsaved())
            store.upsert_model_files(found, seen=utc_now())
            store.close()
    if not args.json:
        print_table([(human_size(f.size), f.format, (f.sha256 or "-")[:16], f.model, f.shown) for f in found],
                    ("SIZE", "FORMAT", "SHA256", "MODEL", "PATH"))
        print(f"{stats.models} model files ({human_size(stats.model_bytes)}) in {stats.files:,} files; "
              f"{stats.cache_hits:,} unchanged since last look; {stats.issues} problems", file=sys.stderr)
    return EXIT_OK


def _open_store(path: str) -> Store | None:
    """The scan works without a database (read-only home, system database as a user): it then forgets."""
    try:
        return Store(path)
    except (StoreError, OSError) as error:
        print(f"weightwarden: warning: not using the database ({error}); results are not cached",
              file=sys.stderr)
        return None
