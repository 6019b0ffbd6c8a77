"""`weightwarden alerts` and `weightwarden events`: read the local log (read-only).

`alerts` lists each incident once, in its latest state, with `incident` (the first alert's id) and
`updates` (how many times it grew); `--every-update` lists every stored record instead. An alert whose
row `verify` would reject (a column, its chain link or its review status was altered) is marked:
`rejected_by_verify` in JSON, REJECTED in the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from weightwarden.agent.cli.output import (
    EXIT_FINDINGS,
    EXIT_OK,
    add_config_options,
    config_from,
    parse_since,
    print_table,
)
from weightwarden.agent.store import Store


def register(commands: Any) -> None:
    for name, helptext in (("alerts", "list alerts (exit 1 when there are any)"), ("events", "list events")):
        parser = commands.add_parser(name, help=helptext, description=helptext)
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        parser.add_argument("--since", metavar="TIME", help="RFC 3339 time or an age such as 30m, 2h, 7d")
        parser.add_argument("--limit", type=int, metavar="N", help="only the newest N")
        if name == "alerts":
            parser.add_argument("--every-update", action="store_true",
                                help="every stored update of an incident, not only its latest state")
        add_config_options(parser)
        parser.set_defaults(run=run_alerts if name == "alerts" else run_events)


def _open(args: argparse.Namespace) -> tuple[Store, dict[str, Any]]:
    config = config_from(args)
    query = {"since": parse_since(args.since) if args.since else None, "limit": args.limit}
    return Store(config.database_path, read_only=True), query


def run_alerts(args: argparse.Namespace) -> int:
    store, query = _open(args)
    try:
        alerts = store.review.latest_records(**query, every_update=args.every_update)
        # Rows whose columns, link or review status `verify` would reject (store/derived.py): the listing
        # shows the chained record, and says when the database around it was tampered with.
        rejected = store.rejected_alerts([str(a["id"]) for a in alerts])
    finally:
        store.close()
    for alert in alerts:
        if alert["id"] in rejected:
            alert["rejected_by_verify"] = rejected[alert["id"]]
    if args.json:
        for alert in alerts:
            print(json.dumps(alert, sort_keys=True))
    else:
        print_table([(("REJECTED " if "rejected_by_verify" in a else "") + a["time"], str(a["severity"]), a["rule"],
                      a.get("model") or "-", str(a["updates"]), a["message"]) for a in alerts],
                    ("TIME", "SEV", "RULE", "MODEL", "UPDATES", "WHAT"))
    if rejected:
        print(f"warning: {len(rejected)} alert(s) rejected by verify (the database was altered around them); "
              "`weightwarden verify` names what changed", file=sys.stderr)
    return EXIT_FINDINGS if alerts else EXIT_OK


def run_events(args: argparse.Namespace) -> int:
    store, query = _open(args)
    try:
        events = store.events(**query)
    finally:
        store.close()
    if args.json:
        for event in events:
            print(json.dumps(event, sort_keys=True))
    else:
        print_table([(e["time"], e["event"]["action"], e.get("model") or "-", e["message"]) for e in events],
                    ("TIME", "ACTION", "MODEL", "WHAT"))
    return EXIT_OK
