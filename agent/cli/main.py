"""`weightwarden`: the command line. Each subcommand lives in its own module; this one only dispatches.

Exit codes (ARCHITECTURE.md): 0 ok, 1 findings, 2 usage or configuration error. A user mistake is one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from weightwarden.agent import __version__, log_format
from weightwarden.agent.cli.output import EXIT_USAGE, UsageError

# Command name -> its module in weightwarden.agent.cli. Only the module of the command being run is imported:
# between them the modules pull in sqlite-utils, numpy, YARA, cryptography and the sensors, and start-up
# time is most of what a short command like `weightwarden alerts` or a rescan costs.
COMMANDS = {
    "scan": "scan_cmd", "agent": "agent_cmd", "alerts": "records_cmd", "events": "records_cmd",
    "config": "config_cmd", "status": "status_cmd", "verify": "verify_cmd", "sync": "sync_cmd",
    "keys": "keys_cmd", "models": "models_cmd", "enroll": "enroll_cmd", "rules": "rules_cmd",
    "canary": "canary_cmd", "prints": "prints_cmd", "audit": "audit_cmd", "access": "access_cmd",
    "seal": "seal_cmd", "unseal": "seal_cmd",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for one command (when known), else for all of them (help, typos, docs tests)."""
    parser = _Parser(prog="weightwarden", description="Protect ML model files against insider theft.")
    parser.add_argument("--version", action="version", version=f"weightwarden {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    wanted = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in wanted:
        importlib.import_module(f"weightwarden.agent.cli.{name}").register(commands)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line: the first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_command_of(argv)).parse_args(argv)
        log_format.configure(logging.DEBUG if args.verbose else logging.WARNING)
        return int(args.run(args))
    except UsageError as error:
        print(f"weightwarden: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `weightwarden events | head`
        sys.stderr.close()
        return 0
    except Exception as error:
        return _user_error(error)


def _user_error(error: Exception) -> int:
    """Configuration and database problems are user-facing: one clear message and exit 2.

    Imported here, on the error path, so that naming these types costs no start-up time.
    """
    from weightwarden.agent.config import ConfigError
    from weightwarden.agent.store import StoreError

    if isinstance(error, ConfigError):
        print(f"weightwarden: configuration error:\n{error}", file=sys.stderr)
    elif isinstance(error, StoreError):
        print(f"weightwarden: {error}", file=sys.stderr)
    else:
        raise error
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
