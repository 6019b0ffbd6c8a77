"""`weightwarden status`: which sensors run, with what privilege, events per second, drops, backlog.

The running agent writes a status snapshot into the store every few seconds (agent/activity.py); this
command only reads it (read-only database) and says when it is stale, i.e. the agent is not running.
Exit code 0 when the snapshot is fresh, 1 when the agent is stopped or its snapshot is stale.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from weightwarden.agent.cli.output import (
    EXIT_FINDINGS,
    EXIT_OK,
    add_config_options,
    config_from,
    human_size,
    print_table,
)
from weightwarden.agent.events import parse_time, utc_now
from weightwarden.agent.serving.section import servers_in, serving_lines
from weightwarden.agent.store import Store

STATUS_KEY = "status"  # written by weightwarden.agent.activity


def register(commands: Any) -> None:
    helptext = "the running agent's sensors: privilege, coverage, events per second, drops, backlog"
    parser = commands.add_parser("status", help=helptext, description=helptext)
    parser.add_argument("--json", action="store_true", help="the snapshot as one JSON object, plus `stale`")
    add_config_options(parser)
    parser.set_defaults(run=run)


def staleness(snapshot: dict[str, Any], now: datetime | None = None) -> tuple[bool, float]:
    """(stale, age in seconds): stale when older than three status intervals (at least 10 s)."""
    age = ((now or utc_now()) - parse_time(snapshot["time"])).total_seconds()
    limit = max(10.0, 3 * float(snapshot.get("interval_seconds") or 2.0))
    return (not snapshot.get("running", False)) or age > limit, age


def discovery_lines(discovery: dict[str, Any] | None) -> list[str]:
    """Discovery's progress as `status` prints it (the app's Overview shows the same entry)."""
    if not discovery:
        return ["discovery: off ([inventory] protect = \"roots\")"]
    lines = [f"discovery: {discovery.get('state')}; {discovery.get('passes_done', 0)} passes done"]
    lines.append(f"  pass {discovery.get('pass')}: {discovery.get('files_seen', 0):,} files, "
                 f"{discovery.get('models_found', 0):,} models, "
                 f"{human_size(int(discovery.get('bytes_read') or 0))} read; now "
                 f"{discovery.get('files_per_second', 0):,.0f} files/s, "
                 f"{human_size(int(discovery.get('bytes_per_second') or 0))}/s")
    if discovery.get("current_root"):
        lines.append(f"  under:     {discovery['current_root']}")
    if discovery.get("resumable_position"):
        lines.append(f"  resumes after: {discovery['resumable_position']}")
    if discovery.get("next_pass_at") and not discovery.get("current_root"):
        lines.append(f"  next pass: {discovery['next_pass_at']}")
    priority = discovery.get("priority") or {}
    if priority and not priority.get("idle"):
        lines.append(f"  not at idle priority: {priority.get('message') or priority}")
    for item in discovery.get("not_covered") or []:
        lines.append(f"  not covered: {item}")
    return lines


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    store = Store(config.database_path, read_only=True)
    try:
        raw = store.state(STATUS_KEY)
    finally:
        store.close()
    if raw is None:
        if args.json:
            print(json.dumps({"stale": True, "running": False, "reason": "the agent has not written a status yet"}))
        else:
            print("no status yet: the agent has not run with this database (start it with `weightwarden agent`)")
        return EXIT_FINDINGS
    snapshot = json.loads(raw)
    stale, age = staleness(snapshot)
    if args.json:
        print(json.dumps({**snapshot, "stale": stale, "age_seconds": round(age, 1)}, sort_keys=True))
        return EXIT_FINDINGS if stale else EXIT_OK
    if not snapshot.get("running", False):
        state = f"stopped (last status {age:.0f} s ago)"
    elif stale:
        state = f"NOT RUNNING? status is stale ({age:.0f} s old; pid was {snapshot.get('pid')})"
    else:
        state = f"running (pid {snapshot.get('pid')}, up {snapshot.get('uptime_seconds', 0):.0f} s)"
    print(f"agent:     {state}")
    print(f"mode:      {snapshot.get('mode')} as {snapshot.get('privilege')}")
    coverage = snapshot.get("coverage", "?")
    print(f"coverage:  {coverage}")
    for sensor, why in sorted((snapshot.get("gaps") or {}).items()):
        print(f"  reduced: {sensor}: {why}")
    print(f"protected: {snapshot.get('protected_files', 0)} model files; "
          f"{snapshot.get('process_cache', 0)} processes in the cache")
    for line in [*scope_summary(snapshot.get("scope")), *discovery_lines(snapshot.get("discovery"))]:
        print(line)
    if "serving" in snapshot:
        for line in serving_lines(servers_in(snapshot)):
            print(line)
    print()
    rows = [(s["name"], s["state"], s["method"], s["privilege"], f"{s['events_per_second']:.1f}", str(s["events"]),
             str(s["drops"]), str(s["backlog"]), s.get("message", "")) for s in snapshot.get("sensors", [])]
    print_table(rows, ("SENSOR", "STATE", "METHOD", "PRIVILEGE", "EV/S", "EVENTS", "DROPS", "BACKLOG", "NOTE"))
    return EXIT_FINDINGS if stale else EXIT_OK


def scope_summary(scope: dict[str, Any] | None) -> list[str]:
    """Users covered (with their roots) and not covered (with why; system accounts counted) from the
    snapshot's `scope` entry (agent/scope/scope.py Scope.to_dict)."""
    if not scope:
        return []
    users = scope.get("users_covered", [])
    lines = [f"users:     {len(users)} covered: " + (", ".join(u["name"] for u in users) or "(none)")]
    for user in users:
        roots = user["protected_roots"]
        lines.append(f"  {user['name']}: " + (", ".join(roots) if roots else "no model folder exists yet"))
    not_covered = scope.get("not_covered", [])
    system = sum(1 for n in not_covered if n["why"] == "system-account")
    people = [n for n in not_covered if n["why"] != "system-account"]
    lines.append(f"not covered: {len(people)} accounts" + (f" (+{system} system accounts)" if system else ""))
    lines += [f"  {n['name']}: {n['detail']}" for n in people]
    lines.append(f"roots:     {len(scope.get('protected_roots', []))} protected, "
                 f"{len(scope.get('watch_roots', []))} watched")
    return lines
