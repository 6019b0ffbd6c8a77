"""`weightwarden config check [FILE]` and `weightwarden config show`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from weightwarden.agent.cli.output import EXIT_OK, EXIT_USAGE, add_config_options, config_from
from weightwarden.agent.config import check_config, default_config_text
from weightwarden.agent.paths import default_config_file, detect_mode


def register(commands: Any) -> None:
    parser = commands.add_parser("config", help="check or show the configuration")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    check = actions.add_parser("check", help="report every error in a config file, with file and line")
    check.add_argument("file", nargs="?", metavar="FILE", help="default: the config file of this mode")
    check.set_defaults(run=run_check)
    show = actions.add_parser("show", help="print the effective settings and where they come from")
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
    print(f"source:          {config.source or '(built-in defaults)'}")
    print(f"mode:            {config.mode}")
    print(f"database:        {config.database_path}")
    print("protected roots: " + (", ".join(config.protected_roots) or "(none exist)"))
    print("watched roots:   " + (", ".join(config.watch_roots) or "(none exist)"))
    return EXIT_OK
