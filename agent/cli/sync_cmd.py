"""`weightwarden sync status` and `weightwarden sync test DEST`: forwarding, per destination."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from weightwarden.agent.cli.output import (
    EXIT_FINDINGS,
    EXIT_OK,
    UsageError,
    add_config_options,
    config_from,
    print_table,
)
from weightwarden.agent.config import Config, ForwardDestination
from weightwarden.agent.events import Action, Category, Event
from weightwarden.agent.forward.destinations import build_transport, format_of
from weightwarden.agent.forward.syslog_transport import SyslogTransport
from weightwarden.agent.forward.transport import TransportError
from weightwarden.agent.store import Store
from weightwarden.agent.store.outbox import Outbox, OutboxRecord


def register(commands: Any) -> None:
    parser = commands.add_parser("sync", help="forwarding to the SIEM: status and a live test",
                                 description="Forwarding to the SIEM, per configured [forward.NAME] destination.")
    actions = parser.add_subparsers(dest="sync_command", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    status = actions.add_parser("status", help="last delivered record, backlog and last error per destination",
                                description="Per destination: last delivered record, backlog, last error.")
    status.add_argument("--json", action="store_true", help="one JSON object per destination")
    add_config_options(status)
    status.set_defaults(run=run_status)
    test = actions.add_parser("test", help="send a live test message to one destination (exit 1 if it fails)",
                              description="Send one test message to DEST now and wait for its confirmation.")
    test.add_argument("destination", metavar="DEST", help="the NAME of a [forward.NAME] table")
    add_config_options(test)
    test.set_defaults(run=run_test)


def target(destination: ForwardDestination) -> str:
    if destination.type == "syslog":
        return f"{destination.transport}://{destination.address}:{destination.port or ''}".rstrip(":")
    if destination.type == "file":
        return destination.path
    return destination.url


def _status_rows(config: Config) -> list[dict[str, Any]]:
    Store(config.database_path, read_only=True).close()  # schema check, friendly errors
    outbox = Outbox(config.database_path, read_only=True)
    try:
        rows = []
        for destination in config.forward:
            state = outbox.state(destination.name)
            last = outbox.after(state.cursor - 1, 1) if state and state.cursor else []
            rows.append({
                "destination": destination.name, "type": destination.type, "format": format_of(destination),
                "target": target(destination), "enabled": destination.enabled,
                "last_delivered_sequence": state.cursor if state else None,
                "last_delivered_id": last[0].id if state and last and last[0].sequence == state.cursor else None,
                "last_delivered_at": state.delivered_at if state else None,
                "backlog": state.backlog if state else outbox.last_sequence(),
                "delivered_total": state.delivered_total if state else 0,
                "last_error": state.last_error if state else None,
                "last_error_at": state.last_error_at if state else None,
                "dropped_total": state.dropped_total if state else 0,
                "dead_letters": state.dead_total if state else 0,
            })
        return rows
    finally:
        outbox.close()


def run_status(args: argparse.Namespace) -> int:
    config = config_from(args)
    if not config.forward:
        print("no destinations configured ([forward.NAME] tables; see docs/forwarding.md)")
        return EXIT_OK
    rows = _status_rows(config)
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return EXIT_OK
    print_table([(r["destination"], r["type"], str(r["last_delivered_sequence"] or "-"), str(r["backlog"]),
                  str(r["dropped_total"]), str(r["dead_letters"]),
                  (r["last_error"] or "-") if r["enabled"] else "disabled") for r in rows],
                ("DEST", "TYPE", "DELIVERED", "BACKLOG", "DROPPED", "DEAD", "LAST ERROR"), out=sys.stdout)
    return EXIT_OK


def run_test(args: argparse.Namespace) -> int:
    config = config_from(args)
    matches = [d for d in config.forward if d.name == args.destination]
    if not matches:
        known = ", ".join(d.name for d in config.forward) or "none configured"
        raise UsageError(f"no destination {args.destination!r} (known: {known})")
    destination = matches[0]
    event = Event(Action.FORWARD_HEALTH, Category.HOST,
                  f"weightwarden sync test: live test message for {destination.name}",
                  details={"destination": destination.name, "test": True})
    record = OutboxRecord(0, "event", event.id, event.to_dict())
    started = time.monotonic()
    try:
        transport = build_transport(destination, config.agent_name)
        try:
            if isinstance(transport, SyslogTransport):
                outcome = transport.send_and_confirm([record], started + destination.timeout_seconds + 5)
            else:
                outcome = transport.send([record])
        finally:
            transport.close()
    except TransportError as error:
        print(f"{destination.name}: FAILED: {error}")
        return EXIT_FINDINGS
    if outcome.dead:
        print(f"{destination.name}: REFUSED: {outcome.dead[0][1]}")
        return EXIT_FINDINGS
    print(f"{destination.name}: test message {event.id} delivered to {target(destination)} "
          f"in {(time.monotonic() - started) * 1000:.0f} ms")
    return EXIT_OK
