"""`weightwarden config check [FILE]` and `weightwarden config show`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from weightwarden.agent.cli.output import EXIT_OK, EXIT_USAGE, add_config_options, config_from
from weightwarden.agent.config import check_config, default_config_text
from weightwarden.agent.events import display_path
from weightwarden.agent.paths import default_config_file, detect_mode
from weightwarden.agent.scope import Scope, compute_scope
from weightwarden.agent.scope.stores import Place


def register(commands: Any) -> None:
    parser = commands.add_parser("config", help="check or show the configuration")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    check = actions.add_parser("check", help="report every error in a config file, with file and line")
    check.add_argument("file", nargs="?", metavar="FILE", help="default: the config file of this mode")
    check.set_defaults(run=run_check)
    show = actions.add_parser("show", help="print the effective settings and where they come from, and per "
                                           "user what is protected and watched (or why a user is not covered)")
    show.add_argument("--json", action="store_true", help="one JSON object: source, mode, database and the scope")
    add_config_options(show)
    show.set_defaults(run=run_show)
    default = actions.add_parser("default", help="print a commented config file with every default")
    default.set_defaults(run=lambda _args: print(default_config_text(), end="") or EXIT_OK)


def run_check(args: argparse.Namespace) -> int:
    path = args.file or default_config_file(detect_mode())
    if args.file is None and not os.path.exists(path):
        print(f"{path}: no config file; the built-in defaults apply")
        return EXIT_OK
    problems = check_config(path)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_USAGE
    print(f"{path}: ok")
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    config = config_from(args)
    scope = compute_scope(config)
    if args.json:
        print(json.dumps({"source": config.source, "mode": config.mode, "database": config.database_path,
                          "scope": scope.to_dict()}, sort_keys=True))
        return EXIT_OK
    print(f"source:          {config.source or '(built-in defaults)'}")
    print(f"mode:            {config.mode}")
    print(f"database:        {config.database_path}")
    print("protected roots: " + (", ".join(map(display_path, scope.protected_roots)) or "(none exist)"))
    print("watched roots:   " + (", ".join(map(display_path, scope.watch_roots)) or "(none exist)"))
    print("users covered:   " + (", ".join(display_path(u.name) for u in scope.users) or "(none)"))
    for line in scope_lines(scope):
        print(line)
    return EXIT_OK


def scope_lines(scope: Scope) -> list[str]:
    """Per user what is protected and watched and which usual places do not exist; the machine's own
    places; who is not covered and why (system accounts summed up in one line)."""
    lines = []
    for user in scope.users:
        lines += ["", f"user {display_path(user.name)} (uid {user.uid}, home {display_path(user.home)})"]
        lines += _places("protected", user.protected) + _places("watched", user.watched)
        lines += _places("missing", user.missing) if user.missing else []
        if not user.protected:
            lines.append("  (no model folder of theirs exists now; each is inventoried once it does)")
    shared = [*_places("protected", scope.shared_protected), *_places("watched", scope.shared_watched),
              *_places("missing", scope.shared_missing)]
    if shared:
        lines += ["", "machine-wide", *shared]
    people = [n for n in scope.not_covered if n.why != "system-account"]
    system = [n for n in scope.not_covered if n.why == "system-account"]
    if people or system:
        lines += ["", "not covered"]
        lines += [f"  {display_path(n.name)} (uid {n.uid}): {display_path(n.detail)}" for n in people]
        if system:
            names = ", ".join(display_path(n.name) for n in system)
            lines.append(f"  {len(system)} system accounts (uid outside the login range): {names}")
    for problem in scope.problems:
        lines.append(f"problem: {display_path(problem)}")
    return lines


def _places(label: str, places: tuple[Place, ...]) -> list[str]:
    return [f"  {label + ':' if i == 0 else '':<11}{display_path(p.path)}" + (f"  ({p.what})" if p.what else "")
            for i, p in enumerate(places)]
