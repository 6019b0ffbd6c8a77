"""`weightwarden canary plant PATH` and `weightwarden canary list`.

`plant` under sudo (root, SUDO_UID set) writes the decoy owned by the person who ran sudo and records them as
its owner; otherwise the caller owns it. `list` says where each canary is now (in place, moved, replaced,
missing), from its recorded identity and the agent's inventory, and records the new path of a moved one.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from weightwarden.agent import canary
from weightwarden.agent.cli.output import EXIT_OK, UsageError, add_config_options, config_from, print_table
from weightwarden.agent.events import ModelFile, display_path
from weightwarden.agent.scope import compute_scope
from weightwarden.agent.store import Store
from weightwarden.agent.store.store import StoreError


def register(commands: Any) -> None:
    parser = commands.add_parser("canary", help="plant decoy models whose access is a high-severity alert")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    plant = actions.add_parser(
        "plant", help="write a realistic decoy checkpoint (safetensors) and register it",
        description="Write a decoy checkpoint and register it. Under sudo the file belongs to the user who ran "
                    "sudo (SUDO_UID/SUDO_GID), not root; otherwise to the caller. A renamed or moved canary "
                    "still counts, and so does a copy of it.")
    plant.add_argument("path", metavar="PATH", help="a new file, or a folder to hold model.safetensors")
    plant.add_argument("--size", choices=sorted(canary.SIZES), default="small",
                       help="small (about 20 MB), medium, large")
    add_config_options(plant)
    plant.set_defaults(run=run_plant)
    listing = actions.add_parser("list", help="the planted canaries and where each is now")
    add_config_options(listing)
    listing.set_defaults(run=run_list)


def run_plant(args: argparse.Namespace) -> int:
    config = config_from(args)
    owner = canary.invoking_user()
    try:
        planted = canary.plant(args.path, config.data_dir, args.size, owner)
    except canary.RegistryError as error:
        raise UsageError(f"{error}; nothing was planted and the registry was left as it is") from None
    except FileExistsError:
        raise UsageError(f"{args.path}: already exists; a canary is never written over a file") from None
    except OSError as error:
        raise UsageError(f"{args.path}: {error.strerror or error}") from None
    print(f"planted {display_path(planted.path)} ({planted.size} bytes, sha256 {planted.sha256})")
    how = f"the user who ran sudo (uid {owner.uid})" if owner.via_sudo else f"the caller (uid {owner.uid})"
    print(f"owner: {planted.owner}, {how}")
    if not any(planted.path.startswith(root.rstrip("/") + "/") for root in compute_scope(config).protected_roots):
        print("note: this path is outside the protected roots; add its folder to [inventory] extra_roots "
              "so the access sensor watches it")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    config = config_from(args)
    try:
        planted = canary.load_registry(config.data_dir)
    except canary.RegistryError as error:
        raise UsageError(str(error)) from None
    found = canary.locate(planted, _inventory(config.database_path))
    moves = {f.canary.path: f.path for f in found if f.state == "moved" and f.path}
    # shown below all the same when the registry is not ours to write; the next `canary list` that may records it
    with contextlib.suppress(OSError, canary.RegistryError):
        canary.relocate(config.data_dir, moves)
    print_table([(f.canary.planted, f.state, display_path(f.path or f.canary.path), f.canary.owner or "-",
                  f.canary.sha256) for f in found], ("PLANTED", "STATE", "PATH", "OWNER", "SHA256"))
    return EXIT_OK


def _inventory(database: str) -> list[ModelFile]:
    """The agent's model files (it follows moves); [] before the agent has made its database."""
    try:
        store = Store(database, read_only=True)
    except StoreError:
        return []
    try:
        return store.model_files()
    finally:
        store.close()
