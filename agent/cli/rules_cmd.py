"""`weightwarden rules check [PATH...]`, `weightwarden rules list [--json]` and
`weightwarden rules export --sigma DIR [PATH...]` (agent/siem/sigma.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import yaml

from weightwarden.agent.cli.output import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, add_config_options, config_from
from weightwarden.agent.detect.policy import load_policy_rules
from weightwarden.agent.detect.rules import RuleSet, builtin_rule_files, load_rules
from weightwarden.agent.siem.sigma import AUTHOR, Exported, Skipped, export


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
    exporting = actions.add_parser("export", help="the rules as Sigma rules over the agent's ECS records")
    exporting.add_argument("--sigma", required=True, metavar="DIR",
                           help="folder to write one Sigma rule per exportable rule into (created if missing)")
    exporting.add_argument("paths", nargs="*", metavar="PATH",
                           help="rule files or folders (default: the built-in rules and [detect] rule_paths)")
    add_config_options(exporting)
    exporting.set_defaults(run=run_export)


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


def run_export(args: argparse.Namespace) -> int:
    """One Sigma rule per rule the SIEM can judge as the agent does; the others listed with the reason."""
    rules = _rules(args)
    for problem in rules.problems:
        print(problem, file=sys.stderr)
    builtin = {os.path.realpath(path) for path in builtin_rule_files()}
    results = [export(rule, builtin=os.path.realpath(rule.path) in builtin) for rule in rules.rules]
    try:
        os.makedirs(args.sigma, exist_ok=True)
        _remove_earlier_exports(args.sigma)
        for result in results:
            if isinstance(result, Exported):
                with open(os.path.join(args.sigma, result.file_name), "w", encoding="utf-8") as handle:
                    yaml.safe_dump(result.sigma, handle, sort_keys=False, allow_unicode=True, width=110)
        with open(os.path.join(args.sigma, "README.md"), "w", encoding="utf-8") as handle:
            handle.write(export_summary(results))
    except OSError as error:
        print(f"cannot write into {args.sigma}: {error}", file=sys.stderr)
        return EXIT_USAGE
    exported = [r for r in results if isinstance(r, Exported)]
    print(f"{len(exported)} of {len(results)} rules exported to {args.sigma}")
    for result in results:
        if isinstance(result, Skipped):
            print(f"not exported: {result.rule.id}: {result.reason}")
    return EXIT_FINDINGS if rules.problems else EXIT_OK


def _remove_earlier_exports(folder: str) -> None:
    """Our Sigma files of an earlier export (a rule since removed or no longer exportable); no other file."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".yml") and os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as handle:
                ours = f"author: {AUTHOR}\n" in handle.read()
            if ours:
                os.remove(path)


def export_summary(results: list[Exported | Skipped]) -> str:
    """The README.md written beside the Sigma rules: what was exported, and what was not and why."""
    lines = ["# Weightwarden detection rules as Sigma", "",
             "Written by `weightwarden rules export --sigma DIR`. Log source `product: weightwarden, "
             "service: ecs`: the ECS documents the agent forwards (docs/siem.md).", "", "## Exported", ""]
    lines += [f"- `{r.file_name}`: {r.rule.id} (severity {r.rule.severity}, level {r.sigma['level']}, "
              f"id {r.sigma['id']})" for r in results if isinstance(r, Exported)]
    lines += ["", "## Not exported", "",
              "The agent raises these itself and forwards its alerts (`event.kind: alert`, `rule.id`); a Sigma "
              "rule over the forwarded events would judge differently:", ""]
    lines += [f"- {r.rule.id}: {r.reason}" for r in results if isinstance(r, Skipped)]
    return "\n".join(lines) + "\n"
