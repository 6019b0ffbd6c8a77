"""`weightwarden verify`: check the hash chain and the signed checkpoints; name the first bad record."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from weightwarden.agent.cli.output import EXIT_FINDINGS, EXIT_OK, UsageError, add_config_options, config_from
from weightwarden.agent.keys import PUBLIC_KEY_NAME, AgentKeyError, load_public_key
from weightwarden.agent.store import Store


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "verify", help="check the tamper-evident log (exit 1 on any break)",
        description="Walk the hash chain over every stored event and alert, check each signed checkpoint with "
                    "the agent's public key, and name the first record that was altered, removed or inserted.")
    parser.add_argument("--public-key", metavar="FILE",
                        help="the agent's public key (PEM); default: the one beside the database")
    parser.add_argument("--json", action="store_true", help="the report as one JSON object")
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    key_path = args.public_key or os.path.join(config.data_dir, PUBLIC_KEY_NAME)
    public_key = None
    key_problem = None
    try:
        public_key = load_public_key(key_path)
    except AgentKeyError as error:
        if args.public_key:
            raise UsageError(str(error)) from None
        key_problem = f"signatures not checked: no agent public key at {key_path}"
    store = Store(config.database_path, read_only=True)
    try:
        report = store.verify_chain(public_key)
    finally:
        store.close()
    if args.json:
        print(json.dumps({
            "ok": report.ok, "records": report.records, "last_sequence": report.last_sequence,
            "checkpoints": report.checkpoints, "signatures_checked": report.signatures_checked,
            "last_signed_sequence": report.last_signed_sequence, "unsigned_tail": report.unsigned_tail,
            "key_problem": key_problem,
            "findings": [{"problem": f.problem, "sequence": f.sequence, "record_id": f.record_id,
                          "message": f.message} for f in report.findings]}, sort_keys=True))
        return EXIT_OK if report.ok else EXIT_FINDINGS
    if key_problem:
        print(f"warning: {key_problem}", file=sys.stderr)
    if not report.ok:
        first = report.findings[0]
        print(f"FAILED: {first.message}")
        if len(report.findings) > 1:
            print(f"  ({len(report.findings) - 1} more problem(s) after it; --json lists them all)")
        return EXIT_FINDINGS
    print(f"OK: {report.records} records, chain intact; {report.checkpoints} checkpoints, "
          f"{report.signatures_checked} signatures valid; last signed record {report.last_signed_sequence}"
          + (f", {report.unsigned_tail} newer records not yet covered by a signature" if report.unsigned_tail
             else ""))
    return EXIT_OK
