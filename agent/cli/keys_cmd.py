"""`weightwarden keys export`: the agent's public key, for checking checkpoint signatures SIEM-side."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from weightwarden.agent.cli.output import EXIT_OK, UsageError, add_config_options, config_from
from weightwarden.agent.keys import PUBLIC_KEY_NAME, AgentKeyError, key_id, load_public_key, public_pem


def register(commands: Any) -> None:
    parser = commands.add_parser("keys", help="the agent's signing key", description="The agent's Ed25519 key.")
    actions = parser.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    export = actions.add_parser("export", help="print the public key (PEM)",
                                description="Print the agent's public key (PEM) that verifies its chain "
                                            "checkpoints; the key id goes to stderr.")
    export.add_argument("--json", action="store_true", help='{"key_id": ..., "public_key": PEM}')
    add_config_options(export)
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    config = config_from(args)
    path = os.path.join(config.data_dir, PUBLIC_KEY_NAME)
    if not os.path.exists(path):
        raise UsageError(f"no agent key yet at {path}: the agent creates it on its first start")
    try:
        key = load_public_key(path)
    except AgentKeyError as error:
        raise UsageError(str(error)) from None
    if args.json:
        print(json.dumps({"key_id": key_id(key), "public_key": public_pem(key)}))
    else:
        print(f"agent key id {key_id(key)}", file=sys.stderr)
        sys.stdout.write(public_pem(key))
    return EXIT_OK
