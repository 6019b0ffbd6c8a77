"""`weightwarden access check|grant|revoke|list|request|break-glass`: the access policy and its grants.

Only root grants, revokes and breaks the glass; anyone may `request` (stored as a pending request, attributed
to the file's owner). Each is a record: agent/access/grants.py writes them as pending records that the agent
ingests into its chained store.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from weightwarden.agent.access import grants, policy
from weightwarden.agent.cli.output import (
    EXIT_FINDINGS,
    EXIT_OK,
    UsageError,
    add_config_options,
    config_from,
    print_table,
)
from weightwarden.agent.detect.durations import parse_duration


def register(commands: Any) -> None:
    parser = commands.add_parser("access", help="access policy, time-boxed grants and requests")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    check = actions.add_parser("check", help="load the access policy files and list every problem")
    check.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: the installed ones)")
    check.set_defaults(run=run_check)
    grant = actions.add_parser("grant", help="(root) let USER open MODEL for a while")
    grant.add_argument("user", metavar="USER")
    grant.add_argument("model", metavar="MODEL", help="a model name or a path (glob) of its files")
    grant.add_argument("--program", help="an executable path or sha256:HEX (default: any program)")
    grant.add_argument("--for", dest="duration", default="8h", help="how long: 30m, 8h, 2d (default 8h)")
    grant.add_argument("--justification", default="")
    grant.set_defaults(run=run_grant)
    revoke = actions.add_parser("revoke", help="(root) end a grant now")
    revoke.add_argument("grant_id", metavar="ID")
    revoke.set_defaults(run=run_revoke)
    listing = actions.add_parser("list", help="the grants and the pending requests")
    listing.set_defaults(run=run_list)
    request = actions.add_parser("request", help="ask an admin for access to MODEL, with a justification")
    request.add_argument("model", metavar="MODEL")
    request.add_argument("--program", help="an executable path or sha256:HEX")
    request.add_argument("--for", dest="duration", default="8h")
    request.add_argument("--justification", required=True)
    request.set_defaults(run=run_request)
    glass = actions.add_parser("break-glass", help="(root) allow root's opens for a while, each one recorded")
    glass.add_argument("--for", dest="duration", default="1h")
    glass.add_argument("--reason", required=True)
    glass.set_defaults(run=run_break_glass)
    for sub in (grant, revoke, listing, request, glass):
        add_config_options(sub)


def _seconds(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None or seconds <= 0:
        raise UsageError(f"--for: {text!r} is not a duration like 30m, 8h or 2d")
    return float(seconds)


def run_check(args: argparse.Namespace) -> int:
    loaded = policy.load_policies(args.paths or None)
    for problem in loaded.problems:
        print(problem)
    print(f"{len(loaded.policies)} policies from {len(loaded.files)} files, {len(loaded.problems)} problems")
    return EXIT_FINDINGS if loaded.problems else EXIT_OK


def run_grant(args: argparse.Namespace) -> int:
    book = grants.GrantBook(config_from(args).data_dir)
    try:
        made = book.grant(args.user, args.model, args.program, _seconds(args.duration), args.justification)
    except (PermissionError, ValueError) as error:
        raise UsageError(str(error)) from None
    print(f"grant {made.id}: {made.user} may open {made.model} with {made.program or 'any program'} until "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(made.expires_at))}")
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    try:
        gone = grants.GrantBook(config_from(args).data_dir).revoke(args.grant_id)
    except PermissionError as error:
        raise UsageError(str(error)) from None
    except KeyError:
        raise UsageError(f"no grant {args.grant_id}") from None
    print(f"revoked grant {gone.id} ({gone.user} on {gone.model})")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    data_dir = config_from(args).data_dir
    book = grants.GrantBook(data_dir)
    book.sweep()
    now = time.time()
    rows = [("grant", g.id, g.user, g.model, g.program or "*", f"{max(0, g.expires_at - now) / 60:.0f} min left",
             g.justification or "-") for g in book.grants()]
    rows += [("request", r.id, r.user, r.model, r.program or "*", f"{r.seconds / 3600:.1f} h asked",
              r.justification) for r in grants.pending_requests(data_dir)]
    print_table(rows, ("KIND", "ID", "USER", "MODEL", "PROGRAM", "TIME", "JUSTIFICATION"))
    return EXIT_OK


def run_request(args: argparse.Namespace) -> int:
    try:
        made = grants.request(config_from(args).data_dir, args.model, args.program, args.justification,
                              _seconds(args.duration))
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None
    print(f"request {made.id} filed for {made.model}; an admin grants it with "
          f"`weightwarden access grant {made.user} {made.model}`")
    return EXIT_OK


def run_break_glass(args: argparse.Namespace) -> int:
    try:
        until = grants.break_glass(config_from(args).data_dir, _seconds(args.duration), args.reason)
    except (PermissionError, ValueError) as error:
        raise UsageError(str(error)) from None
    print(f"break-glass open until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(until))}; "
          "every open by root is recorded")
    return EXIT_OK
