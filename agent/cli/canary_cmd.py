"""`weightwarden canary plant PATH` and `weightwarden canary list`."""

from __future__ import annotations

import argparse
from typing import Any

from weightwarden.agent import canary
from weightwarden.agent.cli.output import EXIT_OK, UsageError, add_config_options, config_from
from weightwarden.agent.scope import compute_scope


def register(commands: Any) -> None:
    parser = commands.add_parser("canary", help="plant decoy models whose access is a high-severity alert")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    plant = actions.add_parser("plant", help="write a realistic decoy checkpoint (safetensors) and register it")
    plant.add_argument("path", metavar="PATH", help="a new file, or a folder to hold model.safetensors")
    plant.add_argument("--size", choices=sorted(canary.SIZES), default="small",
                       help="small (about 20 MB), medium, large")
    add_config_options(plant)
    plant.set_defaults(run=run_plant)
    listing = actions.add_parser("list", help="the planted canaries")
    add_config_options(listing)
    listing.set_defaults(run=run_list)


def run_plant(args: argparse.Namespace) -> int:
    config = config_from(args)
    try:
        planted = canary.plant(args.path, config.data_dir, args.size)
    except FileExistsError:
        raise UsageError(f"{args.path}: already exists; a canary is never written over a file") from None
    except OSError as error:
        raise UsageError(f"{args.path}: {error.strerror or error}") from None
    print(f"planted {planted.path} ({planted.size} bytes, sha256 {planted.sha256})")
    if not any(planted.path.startswith(root.rstrip("/") + "/") for root in compute_scope(config).protected_roots):
        print("note: this path is outside the protected roots; add its folder to [inventory] extra_roots "
              "so the access sensor watches it")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    for item in canary.load_registry(config_from(args).data_dir):
        print(f"{item.planted}  {item.path}  {item.sha256}")
    return EXIT_OK
