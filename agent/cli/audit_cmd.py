"""`weightwarden audit [--json] [--html FILE] [--pdf FILE] [--record]`: the protected model files' exposure.

Reads the store read-only (as `models` does) and looks at each protected file: owner, group, mode, POSIX
ACL, place, flags, the local accounts that can read it, the copies seen of it (agent/audit/report.py has the
JSON keys). Exit 1 when any file has a high-risk flag (world-readable, world-writable, on removable media),
0 otherwise, 2 for usage or configuration errors. `--record` also hands the summary to the running agent,
which chains and forwards it as an `audit-summary` event (agent/audit/record.py); the weekly timer
(installer/linux/weightwarden-audit.timer) runs `weightwarden audit --json --record`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from weightwarden.agent.audit import render
from weightwarden.agent.audit.from_store import audit_store
from weightwarden.agent.audit.report import FLAGS, HIGH_RISK, AuditReport
from weightwarden.agent.audit.serving import serving_lines as audit_serving_lines
from weightwarden.agent.cli.output import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_config_options,
    config_from,
    print_table,
)
from weightwarden.agent.config import Config
from weightwarden.agent.store import Store


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "audit", help="audit the protected model files: permissions, ACLs, places, who can read them, copies",
        description="Audit every protected model file of the inventory: owner, group, mode bits, POSIX ACL "
                    "entries, flags (" + ", ".join(FLAGS) + "), the local accounts its permissions let read it, "
                    "and the copies seen of it. "
                    f"Exit 1 when any file is {', '.join(HIGH_RISK)}; 0 otherwise.")
    parser.add_argument("--json", action="store_true", help="one JSON object (keys: agent/audit/report.py)")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    parser.add_argument("--pdf", metavar="FILE", help="also write the report as PDF (rendered with Qt)")
    parser.add_argument("--policy", metavar="PATH", action="append",
                        help="access policy files or folders for the policy column (repeatable; default: the "
                             "installed ones, as the agent loads them)")
    parser.add_argument("--record", action="store_true",
                        help="record the summary as an audit-summary event (chained and forwarded)")
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    store = Store(config.database_path, read_only=True)
    try:
        report = audit_store(store, config.data_dir, args.policy)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report.to_dict(), sort_keys=True))
    else:
        print_table(render.text_rows(report), render.HEADERS)
        for line in audit_serving_lines(report.serving):
            print(line)
        print(render.summary_line(report), file=sys.stderr)
    if args.html or args.pdf:
        page = render.to_html(report)
        if args.html:
            _write(args.html, page)
        if args.pdf:
            try:
                render.write_pdf(page, args.pdf)
            except render.PdfUnavailableError as error:
                raise UsageError(f"--pdf: {error}") from None
            if not _is_pdf(args.pdf):
                raise UsageError(f"--pdf: could not write {args.pdf}")
    if args.record and not _record(config, report):
        return EXIT_USAGE
    return EXIT_FINDINGS if report.high_risk else EXIT_OK


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as error:
        raise UsageError(f"--html: could not write {path}: {error.strerror or error}") from None


def _is_pdf(path: str) -> bool:
    """Qt reports no error for a PDF it could not write: look at what is there."""
    try:
        with open(path, "rb") as written:
            return written.read(5) == b"%PDF-"
    except OSError:
        return False


def _record(config: Config, report: AuditReport) -> bool:
    """The running agent records the summary (it is the store's one writer); with none, write it here."""
    from weightwarden.agent import control
    from weightwarden.agent.audit.record import summary_event

    socket = control.socket_path(config.data_dir)
    if os.path.exists(socket):
        try:
            reply = control.request(socket, {"op": "record-audit", "summary": report.summary})
        except control.ControlError:
            pass  # a socket left by a stopped agent: nobody else writes, so write it here
        else:
            if not reply.get("ok"):
                print(f"weightwarden: the agent did not record the audit: {reply.get('error')}", file=sys.stderr)
                return False
            return True
    store = Store(config.database_path)
    try:
        store.write([summary_event(report.summary)])
    finally:
        store.close()
    return True
