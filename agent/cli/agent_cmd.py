"""`weightwarden agent [--config FILE]`: run the agent in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from weightwarden.agent import version_stamp
from weightwarden.agent.cli.output import EXIT_OK, add_config_options, config_from
from weightwarden.agent.service import Agent


def register(commands: Any) -> None:
    parser = commands.add_parser("agent", help="run the agent in the foreground",
                                 description="Inventory the protected roots, watch them, and record events "
                                             "and alerts until interrupted (SIGINT/SIGTERM).")
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    logging.getLogger().setLevel(getattr(logging, config.agent.log_level.upper()))
    if not args.verbose:
        logging.getLogger("weightwarden").setLevel(getattr(logging, config.agent.log_level.upper()))
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    version_stamp.check(config.data_dir)  # an older agent must not touch a newer one's data (exit 2)
    agent = Agent(config)
    version_stamp.record(config.data_dir)  # after the store migrated: this data is now ours
    print(f"weightwarden agent: {config.mode} mode, database {config.database_path}, "
          f"watching {len(agent.scope.watch_roots)} roots ({len(agent.scope.protected_roots)} protected) "
          f"of {len(agent.scope.users)} users",
          file=sys.stderr, flush=True)
    agent.run(stop)
    return EXIT_OK
