"""`weightwarden rules check [PATH...]` and `weightwarden rules list [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from weightwarden.agent.cli.output import EXIT_FINDINGS, EXIT_OK, add_config_options, config_from
from weightwarden.agent.detect.policy import load_policy_rules
from weightwarden.agent.detect.rules import RuleSet, load_rules


def register(commands: Any) -> None:
    parser = commands.add_parser("rules", help="check or list the detection rules")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    check = actions.add_parser("check", help="validate rule files; every problem with file and line")
    check.add_argument("paths", nargs="*", metavar="PATH",
                       help="rule files or folders (default: the built-in rules and [detect] rule_paths)")
    add_config_options(check)
    check.set_defaults(run=run_check)
    listing = actions.add_parser("list", help="the rules in effect: id, severity, techniques, title")
    listing.add_argument("--json", action="store_true", help="one JSON object per rule")
    add_config_options(listing)
    listing.set_defaults(run=run_list)


def _rules(args: argparse.Namespace) -> RuleSet:
    if getattr(args, "paths", None):
        return load_rules(args.paths)
    return load_policy_rules(config_from(args).detect.rule_paths)


def run_check(args: argparse.Namespace) -> int:
    rules = _rules(args)
    for problem in rules.problems:
        print(problem, file=sys.stderr)
    if rules.problems:
        print(f"{len(rules.problems)} problem(s) in {len(rules.files)} file(s)", file=sys.stderr)
        return EXIT_FINDINGS
    print(f"{len(rules.rules)} rules in {len(rules.files)} file(s): ok")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    rules = _rules(args)
    for rule in rules.rules:
        if args.json:
            print(json.dumps({"id": rule.id, "title": rule.title, "severity": rule.severity,
                              "techniques": list(rule.techniques), "correlate": rule.correlate,
                              "file": rule.path, "line": rule.line}))
        else:
            print(f"{rule.id:32} {rule.severity:>2}  {','.join(rule.techniques):40} {rule.title}")
    for problem in rules.problems:
        print(problem, file=sys.stderr)
    return EXIT_FINDINGS if rules.problems else EXIT_OK
