"""`weightwarden seal PATH...`, `weightwarden seal --verify PATH...`, `weightwarden unseal PATH...`.

Sealing needs the machine's public sealing key (created with the pair in the agent's data dir on first
use), and wraps each file's key for the organisation's escrow key too when `enroll --escrow-public-key`
stored one (or `--escrow FILE`). Verifying needs the machine's private half: root in system mode.
Unsealing goes through the running agent, which asks the access policy (docs/sealing.md); the one way
around it is recovery with the escrow private key (`unseal --escrow-key FILE`, as root). Exit 1 when any
file failed, 2 when the agent cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from weightwarden.agent import control
from weightwarden.agent.cli.output import EXIT_FINDINGS, EXIT_OK, UsageError, add_config_options, config_from
from weightwarden.agent.seal.container import DEFAULT_CHUNK_SIZE
from weightwarden.agent.seal.escrow import enrolled_escrow_key
from weightwarden.agent.seal.identity import Describer
from weightwarden.agent.seal.inplace import SealError, seal_file, unseal_file, verify_file
from weightwarden.agent.seal.keys import (
    SealKeyError,
    key_id,
    load_private,
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
    seal.add_argument("--escrow", metavar="FILE",
                      help="wrap the key for this X25519 public key (PEM) as the escrow key, instead of the one "
                           "`enroll --escrow-public-key` stored")
    seal.add_argument("--verify", action="store_true",
                      help="check every chunk and the whole file of sealed PATHs (needs the machine key)")
    seal.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="BYTES",
                      help=f"plaintext bytes per chunk (default {DEFAULT_CHUNK_SIZE})")
    add_config_options(seal)
    seal.set_defaults(run=run_seal)
    unseal = commands.add_parser("unseal", help="restore sealed files in place (through the agent)",
                                 description="Ask the running agent to restore the plain file of sealed PATHs: it "
                                             "does so, crash-safely, when the access policy allows you "
                                             "read-write access to the model, and records it either way. "
                                             "--escrow-key recovers without the agent (root).")
    unseal.add_argument("paths", nargs="+", metavar="PATH")
    unseal.add_argument("--escrow-key", metavar="FILE",
                        help="recover with the organisation's escrow X25519 private key (PEM), without the agent "
                             "or its policy; root only")
    add_config_options(unseal)
    unseal.set_defaults(run=run_unseal)


def run_seal(args: argparse.Namespace) -> int:
    data_dir = config_from(args).data_dir
    if args.verify:
        private = _private(data_dir)
        return _each(args.paths, lambda path: _verified(path, verify_file(path, private).size))
    try:
        recipients = [("machine", machine_public_key(data_dir))]
        escrow = load_public(args.escrow) if args.escrow else enrolled_escrow_key(data_dir)
        if escrow is not None:
            recipients.append(("escrow", escrow))
    except SealKeyError as error:
        raise UsageError(str(error)) from None
    describe = Describer()
    ids = ", ".join(f"{kind} {key_id(key)}" for kind, key in recipients)

    def one(path: str) -> str:
        header = seal_file(path, recipients, chunk_size=args.chunk_size, describe=describe)
        return f"sealed {path} ({header.size} bytes, {header.chunks} chunks; keys: {ids})"

    return _each(args.paths, one)


def run_unseal(args: argparse.Namespace) -> int:
    config = config_from(args)
    if args.escrow_key:
        # Root's, as the system agent's admin; in user mode the user's own agent and data.
        if config.mode == "system" and os.geteuid() != 0:
            raise UsageError("recovery with the escrow key is for root (it bypasses the access policy)")
        return _recover(args.paths, args.escrow_key)
    socket = control.socket_path(config.data_dir)
    return _each(args.paths, lambda path: unseal_through_agent(socket, path))


def unseal_through_agent(socket: str, path: str, *, poll_seconds: float = 0.2) -> str:
    """Ask the agent to unseal `path` and wait for the outcome (the agent works on it in the background)."""
    try:
        reply = control.request(socket, {"op": "unseal", "path": os.path.abspath(path)})
        while reply.get("ok") and not reply.get("done"):
            time.sleep(poll_seconds)
            reply = control.request(socket, {"op": "unseal", "job": reply.get("job")})
    except control.ControlError as error:
        raise UsageError(f"{error}; unsealing goes through the agent (recovery without it: --escrow-key)") from None
    if not reply.get("ok"):
        raise SealError(str(reply.get("error")))
    return f"unsealed {path} ({reply.get('size')} bytes; {reply.get('decision')})"


def _recover(paths: list[str], key_file: str) -> int:
    try:
        private = load_private(key_file)
    except SealKeyError as error:
        raise UsageError(str(error)) from None
    return _each(paths, lambda path: f"recovered {path} ({unseal_file(path, private).size} bytes, escrow key)")


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
