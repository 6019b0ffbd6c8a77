"""`weightwarden sync status` and `weightwarden sync test DEST`: forwarding, per destination."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from weightwarden.agent.cli.output import (
    EXIT_FINDINGS,
    EXIT_OK,
    UsageError,
    add_config_options,
    config_from,
    print_table,
)
from weightwarden.agent.config import Config
from weightwarden.agent.forward.live_test import send_test_record
from weightwarden.agent.forward.status import status_rows, target
from weightwarden.agent.store import Store


def register(commands: Any) -> None:
    parser = commands.add_parser("sync", help="forwarding to the SIEM: status and a live test",
                                 description="Forwarding to the SIEM, per configured [forward.NAME] destination.")
    actions = parser.add_subparsers(dest="sync_command", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    status = actions.add_parser("status", help="last delivered record, backlog and last error per destination",
                                description="Per destination: last delivered record, backlog, last error.")
    status.add_argument("--json", action="store_true", help="one JSON object per destination")
    status.add_argument("--dead-letters", type=int, default=10, metavar="N",
                        help="list the N newest records each destination refused (dead letters); default 10")
    add_config_options(status)
    status.set_defaults(run=run_status)
    test = actions.add_parser("test", help="send a live test message to one destination (exit 1 if it fails)",
                              description="Send one test message to DEST now and wait for its confirmation.")
    test.add_argument("destination", metavar="DEST", help="the NAME of a [forward.NAME] table")
    add_config_options(test)
    test.set_defaults(run=run_test)


def _status_rows(config: Config, dead_letters: int) -> list[dict[str, Any]]:
    Store(config.database_path, read_only=True).close()  # schema check, friendly errors
    return status_rows(config.database_path, config.forward, dead_letters)


def run_status(args: argparse.Namespace) -> int:
    config = config_from(args)
    if not config.forward:
        print("no destinations configured ([forward.NAME] tables; see docs/forwarding.md)")
        return EXIT_OK
    rows = _status_rows(config, max(0, args.dead_letters))
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return EXIT_OK
    print_table([(r["destination"], r["type"], str(r["last_delivered_sequence"] or "-"), str(r["backlog"]),
                  str(r["dropped_total"]), str(r["dead_letters"]),
                  (r["last_error"] or "-") if r["enabled"] else "disabled") for r in rows],
                ("DEST", "TYPE", "DELIVERED", "BACKLOG", "DROPPED", "DEAD", "LAST ERROR"), out=sys.stdout)
    for row in rows:
        if row["dead_letter_list"]:
            print(f"\n{row['destination']}: {row['dead_letters']} record(s) refused and kept as dead letters "
                  f"(newest {len(row['dead_letter_list'])}):")
            print_table([(d["time"], d["record_id"], str(d["sequence"]), d["reason"]) for d in row["dead_letter_list"]],
                        ("TIME", "RECORD", "SEQUENCE", "ERROR"), out=sys.stdout)
    return EXIT_OK


def run_test(args: argparse.Namespace) -> int:
    config = config_from(args)
    matches = [d for d in config.forward if d.name == args.destination]
    if not matches:
        known = ", ".join(d.name for d in config.forward) or "none configured"
        raise UsageError(f"no destination {args.destination!r} (known: {known})")
    destination = matches[0]
    result = send_test_record(destination, config.agent_name, "weightwarden sync test")
    if not result.ok:
        print(f"{destination.name}: FAILED: {result.error}")
        return EXIT_FINDINGS
    print(f"{destination.name}: test message {result.record_id} delivered to {target(destination)} "
          f"in {result.milliseconds} ms")
    return EXIT_OK
