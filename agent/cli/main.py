"""`weightwarden`: the command line. Each subcommand lives in its own module; this one only dispatches.

Exit codes (ARCHITECTURE.md): 0 ok, 1 findings, 2 usage or configuration error. A user mistake is one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from weightwarden.agent import __version__
from weightwarden.agent.cli import (
    agent_cmd,
    canary_cmd,
    config_cmd,
    enroll_cmd,
    keys_cmd,
    models_cmd,
    records_cmd,
    rules_cmd,
    scan_cmd,
    status_cmd,
    sync_cmd,
    verify_cmd,
)
from weightwarden.agent.cli.output import EXIT_USAGE, UsageError
from weightwarden.agent.config import ConfigError
from weightwarden.agent.store import StoreError

COMMANDS = (scan_cmd, agent_cmd, records_cmd, config_cmd, status_cmd, verify_cmd, sync_cmd, keys_cmd, models_cmd,
            enroll_cmd, rules_cmd, canary_cmd)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="weightwarden", description="Protect ML model files against insider theft.")
    parser.add_argument("--version", action="version", version=f"weightwarden {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return int(args.run(args))
    except UsageError as error:
        print(f"weightwarden: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as error:
        print(f"weightwarden: configuration error:\n{error}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as error:
        print(f"weightwarden: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `weightwarden events | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
