"""`weightwarden seal PATH...`, `weightwarden seal --verify PATH...`, `weightwarden unseal PATH...`.

Sealing needs the machine's public sealing key (created with the pair in the agent's data dir on first
use); verifying and unsealing need its private half: root in system mode. Unsealing through the agent,
for users the access policy allows, comes with the access policy. Exit 1 when any file failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from weightwarden.agent.cli.output import EXIT_FINDINGS, EXIT_OK, UsageError, add_config_options, config_from
from weightwarden.agent.seal.container import DEFAULT_CHUNK_SIZE
from weightwarden.agent.seal.inplace import SealError, seal_file, unseal_file, verify_file
from weightwarden.agent.seal.keys import (
    SealKeyError,
    key_id,
    load_public,
    machine_private_key,
    machine_public_key,
)


def register(commands: Any) -> None:
    seal = commands.add_parser("seal", help="encrypt cold model files in place",
                               description="Encrypt files in place (AES-256-GCM in authenticated chunks), the "
                                           "data key wrapped for this machine and optionally an escrow key; "
                                           "crash-safe. --verify checks sealed files without writing "
                                           "plaintext.")
    seal.add_argument("paths", nargs="+", metavar="PATH")
    seal.add_argument("--escrow", metavar="FILE", help="also wrap the key for this X25519 public key (PEM)")
    seal.add_argument("--verify", action="store_true",
                      help="check every chunk and the whole file of sealed PATHs (needs the machine key)")
    seal.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="BYTES",
                      help=f"plaintext bytes per chunk (default {DEFAULT_CHUNK_SIZE})")
    add_config_options(seal)
    seal.set_defaults(run=run_seal)
    unseal = commands.add_parser("unseal", help="restore sealed files in place",
                                 description="Restore the plain file of sealed PATHs, crash-safely (needs the "
                                             "machine's private sealing key: root in system mode).")
    unseal.add_argument("paths", nargs="+", metavar="PATH")
    add_config_options(unseal)
    unseal.set_defaults(run=run_unseal)


def run_seal(args: argparse.Namespace) -> int:
    data_dir = config_from(args).data_dir
    if args.verify:
        private = _private(data_dir)
        return _each(args.paths, lambda path: _verified(path, verify_file(path, private).size))
    try:
        recipients = [("machine", machine_public_key(data_dir))]
        if args.escrow:
            recipients.append(("escrow", load_public(args.escrow)))
    except SealKeyError as error:
        raise UsageError(str(error)) from None
    ids = ", ".join(f"{kind} {key_id(key)}" for kind, key in recipients)

    def one(path: str) -> str:
        header = seal_file(path, recipients, chunk_size=args.chunk_size)
        return f"sealed {path} ({header.size} bytes, {header.chunks} chunks; keys: {ids})"

    return _each(args.paths, one)


def run_unseal(args: argparse.Namespace) -> int:
    private = _private(config_from(args).data_dir)
    return _each(args.paths, lambda path: f"unsealed {path} ({unseal_file(path, private).size} bytes)")


def _verified(path: str, size: int) -> str:
    return f"ok {path} ({size} bytes)"


def _private(data_dir: str) -> Any:
    try:
        return machine_private_key(data_dir)
    except SealKeyError as error:
        raise UsageError(str(error)) from None


def _each(paths: list[str], action: Any) -> int:
    failed = 0
    for path in paths:
        try:
            print(action(os.fsdecode(path)))
        except SealError as error:
            print(f"weightwarden: {error}", file=sys.stderr)
            failed += 1
    return EXIT_FINDINGS if failed else EXIT_OK
