"""`weightwarden enroll --siem URL [--token T] [--ca FILE] [--escrow-public-key FILE]`: connect this agent to
the organisation's SIEM, and give it the organisation's escrow key for sealing (agent/seal/escrow.py).

Writes a `[forward.NAME]` table (docs/forwarding.md) into the agent's config file, creates the agent's
Ed25519 key pair when there is none, sends one live test event, and prints what the SIEM side needs: the
agent's name, key id and public key. Running it again for the same NAME replaces that table.

The SIEM URL says which transport to use:
    syslog://host[:port]   syslog+tls://...   syslog over TLS (RFC 5425, default port 6514)
    syslog+tcp://host:port  syslog+udp://host:port
    hec+https://splunk:8088 (or https://... with --token)   Splunk HTTP Event Collector
    bulk+https://es:9200    Elasticsearch / OpenSearch _bulk (--token is the API key)
    file:///var/log/weightwarden/events.jsonl              JSON lines for a log shipper
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from weightwarden.agent.cli import sync_cmd
from weightwarden.agent.cli.output import EXIT_FINDINGS, EXIT_OK, UsageError, add_config_options, config_from
from weightwarden.agent.config import check_config, forward_table_lines
from weightwarden.agent.forward.destination_types import DESTINATION_TYPES, type_of_scheme
from weightwarden.agent.keys import AgentKey, AgentKeyError, public_pem
from weightwarden.agent.paths import default_config_file
from weightwarden.agent.seal.escrow import read_public_key_file, store_escrow_key
from weightwarden.agent.seal.keys import SealKeyError, key_id

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "enroll", help="forward to the SIEM: write the destination, create the agent key, send a test event",
        description="Connect this agent to a SIEM: write a [forward.NAME] destination into the config, create "
                    "the agent's key pair, send a test event, and print the agent's id and public key.")
    parser.add_argument("--siem", metavar="URL",
                        help="syslog[+tls|+tcp|+udp]://host[:port], hec+https://host:8088, bulk+https://host:9200 "
                             "or file:///path")
    parser.add_argument("--token", metavar="TOKEN", help="HEC token (hec) or API key (bulk)")
    parser.add_argument("--ca", metavar="FILE", help="CA bundle (PEM) that signs the SIEM's certificate; "
                                                     "copied next to the config")
    parser.add_argument("--name", default="siem", metavar="NAME", help="the destination's name (default: siem)")
    parser.add_argument("--format", help="message format (default: the transport's; see docs/forwarding.md)")
    parser.add_argument("--no-test", action="store_true", help="do not send the test event")
    parser.add_argument("--escrow-public-key", metavar="FILE",
                        help="the organisation's X25519 escrow public key (PEM, 32 raw bytes or base64): every "
                             "`weightwarden seal` wraps file keys for it too (docs/sealing.md); may be given alone")
    add_config_options(parser)
    parser.set_defaults(run=run)


def destination_table(url: str, token: str | None, ca_file: str | None, fmt: str | None) -> dict[str, Any]:
    """The [forward.NAME] keys for a SIEM URL; raises UsageError for a URL we cannot use.

    Which scheme means which type, and which key --token fills, is declared per type in
    forward/destination_types.py."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    kind = type_of_scheme(scheme)
    if kind is None:
        raise UsageError(f"--siem {url}: unknown scheme {parts.scheme!r} "
                         "(syslog://, syslog+tcp://, hec+https://, bulk+https://, file://)")
    if scheme in ("https", "http") and not token:  # bare http(s) could be HEC or _bulk
        raise UsageError(f"--siem {url}: say hec+https:// (Splunk, needs --token) or bulk+https:// (Elastic)")
    table: dict[str, Any] = {"type": kind.name, **kind.schemes[scheme]}
    if kind.target == "address":
        if not parts.hostname:
            raise UsageError(f"--siem {url}: no host name")
        table["address"] = parts.hostname
        if parts.port:
            table["port"] = parts.port
    elif kind.target == "path":
        if not parts.path or not os.path.isabs(parts.path):
            raise UsageError(f"--siem {url}: file:///absolute/path")
        table["path"] = parts.path
    else:
        table["url"] = _plain_url(url)
    if token:
        if not kind.enroll_token:
            takers = " and ".join(k.name for k in DESTINATION_TYPES.values() if k.enroll_token)
            raise UsageError(f"--token is for {takers} destinations, not {kind.name}")
        table[kind.enroll_token] = token  # run() moves a HEC token into a file of its own
    elif any(kind.enroll_token in group for group in kind.needs):
        raise UsageError(f"a {kind.label} destination needs --token")
    if ca_file:
        if not kind.takes("ca_file") or table.get("transport") in ("tcp", "udp") or \
                table.get("url", "").startswith("http:"):
            raise UsageError("--ca only applies to TLS destinations")
        table["ca_file"] = ca_file
    if fmt:
        table["format"] = fmt
    return table


def _plain_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return scheme.split("+")[-1] + "://" + rest


def run(args: argparse.Namespace) -> int:
    if args.escrow_public_key:
        _enroll_escrow(args)
        if not args.siem:
            return EXIT_OK
    elif not args.siem:
        raise UsageError("enroll needs --siem URL, or --escrow-public-key FILE, or both")
    if not _NAME.match(args.name):
        raise UsageError(f"--name {args.name!r}: letters, digits, '-' and '_' only")
    config = config_from(args)  # the current file must be valid before we add to it
    path = Path(args.config or config.source or default_config_file(config.mode))
    if args.ca and not os.path.isfile(args.ca):
        raise UsageError(f"--ca {args.ca}: no such file")
    ca_copy = path.parent / f"{args.name}-ca.pem"
    table = destination_table(args.siem, args.token, str(ca_copy) if args.ca else None, args.format)
    secrets: list[tuple[Path, str]] = []
    if "token" in table:
        # The HEC token goes into a file readable by the agent only, not into the config admins can read.
        token_file = path.parent / f"{args.name}.token"
        secrets.append((token_file, table.pop("token")))
        table["token_file"] = str(token_file)

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    new_text = with_destination(text, args.name, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    for secret_path, secret in secrets:
        _write_private(secret_path, secret + "\n")
    if args.ca:
        shutil.copyfile(args.ca, ca_copy)
        os.chmod(ca_copy, 0o644)
    _replace_checked(path, new_text)
    print(f"wrote [forward.{args.name}] ({table['type']}) to {path}")

    config = config_from(args)
    try:
        key = AgentKey.load_or_create(config.data_dir)
    except (AgentKeyError, OSError) as error:
        raise UsageError(f"cannot create the agent key in {config.data_dir}: {error}") from None
    outcome = EXIT_OK
    if not args.no_test:
        test = argparse.Namespace(destination=args.name, config=str(path), mode=args.mode)
        outcome = sync_cmd.run_test(test)
        if outcome != EXIT_OK:
            print("the destination is saved; fix the SIEM side or the settings, then: "
                  f"weightwarden sync test {args.name}", file=sys.stderr)
    print(f"agent name: {config.agent_name}")
    print(f"agent key id: {key.id}")
    print("agent public key (give it to the SIEM side; `weightwarden verify --public-key` checks with it):")
    sys.stdout.write(public_pem(key.public))
    print("restart the agent to start forwarding (system service: systemctl restart weightwarden)")
    return EXIT_FINDINGS if outcome != EXIT_OK else EXIT_OK


def _enroll_escrow(args: argparse.Namespace) -> None:
    """Check the escrow key and store it in the agent's data dir, where `seal` takes it from."""
    try:
        key = read_public_key_file(args.escrow_public_key)
    except SealKeyError as error:
        raise UsageError(f"--escrow-public-key {error}") from None
    try:
        stored = store_escrow_key(config_from(args).data_dir, key)
    except OSError as error:
        raise UsageError(f"cannot store the escrow key: {error.strerror or error}") from None
    print(f"escrow key {key_id(key)} stored in {stored}: `weightwarden seal` wraps every file key for it")


def with_destination(text: str, name: str, table: dict[str, Any]) -> str:
    """The config text with [forward.NAME] replaced (or appended); every other line stays as written."""
    kept: list[str] = []
    skipping = False
    header = re.compile(r"^\s*\[\s*forward\s*\.\s*(\"?)" + re.escape(name) + r"\1\s*\]\s*(#.*)?$")
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = bool(header.match(line))
            if skipping:
                continue
        elif skipping and stripped.startswith("#"):
            continue
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    block = forward_table_lines(name, table, comment="written by `weightwarden enroll`")
    return "\n".join([*kept, *([""] if kept else []), *block]) + "\n"


def _replace_checked(path: Path, text: str) -> None:
    """Write the new config beside the old one, check it like the agent would, then swap it in."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        if path.exists() and os.geteuid() == 0:
            stat = path.stat()
            os.chown(temporary, stat.st_uid, stat.st_gid)  # keep root:weightwarden-admin
        os.chmod(temporary, mode)
        problems = check_config(temporary)
        if problems:
            raise UsageError("the destination would make the config invalid: " +
                             "; ".join(p.message for p in problems))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, 0o600)
