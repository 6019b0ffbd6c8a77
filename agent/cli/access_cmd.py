"""`weightwarden access check|grant|refuse|revoke|list|request|break-glass`: the access policy and its grants.

While the agent runs, grant, refuse, revoke, list and request go through its control socket, the path the
app takes (agent/control_access.py): an admin (root or the admin group) approves, refuses and revokes; anyone
requests for themselves and lists their own. Without a running agent, grant, revoke and list act on the
files directly and a request is dropped into the request folder, as before: only root grants and revokes
that way. Break-glass is root's, on the files. Each is a record: the agent writes it into its chained store.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from weightwarden.agent import control
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

DEFAULT_DURATION = "8h"


def register(commands: Any) -> None:
    parser = commands.add_parser("access", help="access policy, time-boxed grants and requests")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    check = actions.add_parser("check", help="load the access policy files and list every problem")
    check.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: the installed ones)")
    check.set_defaults(run=run_check)
    grant = actions.add_parser("grant", help="(admin) let USER open MODEL for a while, or approve --request ID")
    grant.add_argument("user", metavar="USER", nargs="?")
    grant.add_argument("model", metavar="MODEL", nargs="?", help="a model name or a path (glob) of its files")
    grant.add_argument("--request", metavar="ID", help="approve this pending request (its user, model, program)")
    grant.add_argument("--program", help="an executable path or sha256:HEX (default: any program)")
    grant.add_argument("--for", dest="duration",
                       help="how long: 30m, 8h, 2d (default 8h; with --request, the time asked)")
    grant.add_argument("--justification", default="")
    grant.set_defaults(run=run_grant)
    refuse = actions.add_parser("refuse", help="(admin) turn a pending request down (needs the running agent)")
    refuse.add_argument("request_id", metavar="ID")
    refuse.add_argument("--note", default="", help="why, for the requester and the record")
    refuse.set_defaults(run=run_refuse)
    revoke = actions.add_parser("revoke", help="(admin) end a grant now")
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
    for sub in (grant, refuse, revoke, listing, request, glass):
        add_config_options(sub)


def _seconds(text: str) -> float:
    # days too (the help offers 2d); rule durations (parse_duration) stop at hours
    days = text.strip().removesuffix("d")
    in_days = parse_duration(days) if days != text.strip() and days.replace(".", "", 1).isdigit() else None
    seconds = in_days * 86400 if in_days is not None else parse_duration(text)
    if seconds is None or seconds <= 0:
        raise UsageError(f"--for: {text!r} is not a duration like 30m, 8h or 2d")
    return float(seconds)


def run_check(args: argparse.Namespace) -> int:
    loaded = policy.load_policies(args.paths or None)
    for problem in loaded.problems:
        print(problem)
    print(f"{len(loaded.policies)} policies from {len(loaded.files)} files, {len(loaded.problems)} problems")
    return EXIT_FINDINGS if loaded.problems else EXIT_OK


def _via_agent(args: argparse.Namespace, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The running agent's reply to `payload` (None: no agent answers); a refusal is a usage error."""
    path = control.socket_path(config_from(args).data_dir)
    if not os.path.exists(path):
        return None
    try:
        reply = control.request(path, payload)
    except control.ControlError:
        return None
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", "the agent refused")))
    return reply


def _until(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def run_grant(args: argparse.Namespace) -> int:
    seconds = _seconds(args.duration or DEFAULT_DURATION)
    if args.request:
        payload: dict[str, Any] = {"op": "access-grant", "request": args.request}
        if args.duration is not None:
            payload["hours"] = seconds / 3600
    elif args.user and args.model:
        payload = {"op": "access-grant", "user": args.user, "model": args.model, "program": args.program,
                   "hours": seconds / 3600, "justification": args.justification}
    else:
        raise UsageError("grant: give USER and MODEL, or --request ID")
    reply = _via_agent(args, payload)
    if reply is not None:
        made = grants.Grant(**{k: v for k, v in reply["grant"].items() if k != "seconds_left"})
    elif args.request:
        raise UsageError("grant --request needs the running agent")
    else:
        book = grants.GrantBook(config_from(args).data_dir)
        try:
            made = book.grant(args.user, args.model, args.program, seconds, args.justification)
        except (PermissionError, ValueError) as error:
            raise UsageError(str(error)) from None
    print(f"grant {made.id}: {made.user} may open {made.model} with {made.program or 'any program'} until "
          f"{_until(made.expires_at)}")
    return EXIT_OK


def run_refuse(args: argparse.Namespace) -> int:
    reply = _via_agent(args, {"op": "access-refuse", "request": args.request_id, "note": args.note})
    if reply is None:
        raise UsageError("refuse needs the running agent (weightwarden agent)")
    print(f"refused request {args.request_id} ({reply['request']['user']} on {reply['request']['model']})")
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    reply = _via_agent(args, {"op": "access-revoke", "grant": args.grant_id})
    if reply is not None:
        user, model = reply["grant"]["user"], reply["grant"]["model"]
    else:
        try:
            gone = grants.GrantBook(config_from(args).data_dir).revoke(args.grant_id)
        except PermissionError as error:
            raise UsageError(str(error)) from None
        except KeyError:
            raise UsageError(f"no grant {args.grant_id}") from None
        user, model = gone.user, gone.model
    print(f"revoked grant {args.grant_id} ({user} on {model})")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    now = time.time()
    reply = _via_agent(args, {"op": "access-list"})
    if reply is not None:
        active = [grants.Grant(**{k: v for k, v in g.items() if k != "seconds_left"}) for g in reply["grants"]]
        pending = [grants.Request(**r) for r in reply["requests"]]
    else:
        data_dir = config_from(args).data_dir
        book = grants.GrantBook(data_dir)
        book.sweep()
        active, pending = list(book.grants()), grants.pending_requests(data_dir)
    rows = [("grant", g.id, g.user, g.model, g.program or "*", f"{max(0, g.expires_at - now) / 60:.0f} min left",
             g.justification or "-") for g in active]
    rows += [("request", r.id, r.user, r.model, r.program or "*", f"{r.seconds / 3600:.1f} h asked",
              r.justification) for r in pending]
    print_table(rows, ("KIND", "ID", "USER", "MODEL", "PROGRAM", "TIME", "JUSTIFICATION"))
    return EXIT_OK


def run_request(args: argparse.Namespace) -> int:
    seconds = _seconds(args.duration)
    reply = _via_agent(args, {"op": "access-request", "model": args.model, "program": args.program,
                              "justification": args.justification, "hours": seconds / 3600})
    if reply is not None:
        made = grants.Request(**reply["request"])
    else:
        try:
            made = grants.request(config_from(args).data_dir, args.model, args.program, args.justification, seconds)
        except (OSError, ValueError) as error:
            raise UsageError(str(error)) from None
    print(f"request {made.id} filed for {made.model}; an admin approves it in the app's Access view or with "
          f"`weightwarden access grant --request {made.id}`")
    return EXIT_OK


def run_break_glass(args: argparse.Namespace) -> int:
    try:
        until = grants.break_glass(config_from(args).data_dir, _seconds(args.duration), args.reason)
    except (PermissionError, ValueError) as error:
        raise UsageError(str(error)) from None
    print(f"break-glass open until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(until))}; "
          "every open by root is recorded")
    return EXIT_OK
