"""`weightwarden verify`: check the hash chain, the columns readers use, the review state and the signed
checkpoints; with `--against`, compare the log with the SIEM's copy; name the first bad record. With
`--from`, verify one host's records in the central store instead, without the local log."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from weightwarden.agent.central_verify import CentralReport, TailPolicy, verify_documents
from weightwarden.agent.cli.output import EXIT_FINDINGS, EXIT_OK, UsageError, add_config_options, config_from
from weightwarden.agent.keys import PUBLIC_KEY_NAME, AgentKeyError, load_public_key
from weightwarden.agent.siem_copy import PAGE, Comparison, CopyError, compare, documents
from weightwarden.agent.store import Store
from weightwarden.agent.store.chain import Finding, VerifyPolicy


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "verify", help="check the tamper-evident log (exit 1 on any break)",
        description="Walk the hash chain over every stored event and alert, check the columns the app and the "
                    "CLI read against the chained records and each alert's status against the chained reviews, "
                    "check each signed checkpoint with the agent's public key, and name the first record that was "
                    "altered, removed or inserted. Records no signature covers after twice the checkpoint interval "
                    "(and no clean stop) are a finding too.")
    parser.add_argument("--public-key", metavar="FILE",
                        help="the agent's public key (PEM), e.g. the one registered SIEM-side; default: the one "
                             "beside the database (a missing key is a failure unless --unsigned)")
    parser.add_argument("--unsigned", action="store_true",
                        help="check the chain and the columns without signatures (no key at hand): an edit "
                             "relinked after it, or a removed tail, then goes unseen")
    parser.add_argument("--against", metavar="FILE|URL", action="append", default=[],
                        help="also compare with the SIEM's copy: a JSON-lines file the file destination wrote, or "
                             "an OpenSearch/Elasticsearch index URL (http(s)://[user:pass@]host:9200/INDEX); "
                             "names records missing or different on either side (repeatable)")
    parser.add_argument("--json", action="store_true", help="the report as one JSON object")
    central = parser.add_argument_group(
        "verify from the central store", "check one host's records where the SIEM holds them (chain, signatures, "
        "gaps), without the endpoint: a wiped or rewritten machine cannot hide what it already sent")
    central.add_argument("--from", dest="central", metavar="URL|FILE",
                         help="an OpenSearch/Elasticsearch index or pattern (https://[user:pass@]host:9200/"
                              "logs-weightwarden-*), or a JSON-lines file (file:///path or a path) as the file "
                              "destination writes it; needs --host and --public-key (or --unsigned)")
    central.add_argument("--host", metavar="NAME", help="the agent's name as its documents carry it (host.name)")
    central.add_argument("--page-size", type=int, default=PAGE, metavar="N",
                         help=f"documents per search request (default {PAGE})")
    central.add_argument("--checkpoint-seconds", type=float, default=300.0, metavar="S",
                         help="the agent's [agent] checkpoint_seconds (default 300): its newest records unsigned "
                              "for more than twice that, with no clean stop, are a missing tail; 0 leaves the "
                              "tail alone")
    central.add_argument("--ca-file", default="", metavar="FILE", help="CA certificates of the store (PEM)")
    central.add_argument("--client-cert", default="", metavar="FILE", help="client certificate (PEM)")
    central.add_argument("--client-key", default="", metavar="FILE", help="its private key (PEM)")
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.central:
        return run_central(args)
    if args.host:
        raise UsageError("--host goes with --from")
    config = config_from(args)
    key_path = args.public_key or os.path.join(config.data_dir, PUBLIC_KEY_NAME)
    public_key = None
    key_problem = None
    if not args.unsigned:
        try:
            public_key = load_public_key(key_path)
        except AgentKeyError as error:
            if args.public_key:
                raise UsageError(str(error)) from None
            key_problem = (f"no agent public key at {key_path}: signatures cannot be checked (give the key with "
                           "--public-key, or --unsigned to check the chain alone)")
    policy = VerifyPolicy(checkpoint_seconds=config.agent.checkpoint_seconds,
                          heartbeat_seconds=config.agent.heartbeat_seconds, signatures=not args.unsigned)
    store = Store(config.database_path, read_only=True)
    comparisons: list[Comparison] = []
    try:
        report = store.verify_chain(public_key, policy)
        for source in args.against:
            try:
                comparisons.append(compare(source, store.records_in_order(), config.agent_name))
            except CopyError as error:
                raise UsageError(f"--against {source}: {error}") from None
    finally:
        store.close()
    findings = list(report.findings)
    if key_problem:
        findings.insert(0, Finding("key", 0, None, key_problem))
    for comparison in comparisons:
        findings.extend(Finding(d.problem, d.sequence, d.record_id, d.message) for d in comparison.differences)
    ok = not findings
    if args.json:
        print(json.dumps({
            "ok": ok, "records": report.records, "last_sequence": report.last_sequence,
            "checkpoints": report.checkpoints, "signatures_checked": report.signatures_checked,
            "last_signed_sequence": report.last_signed_sequence, "unsigned_tail": report.unsigned_tail,
            "clean_stop": report.clean_stop, "signatures": not args.unsigned, "key_problem": key_problem,
            "against": [{"source": c.source, "delivered": c.delivered, "compared": c.compared,
                         "not_yet_delivered": c.not_yet_delivered, "other_hosts": c.other_hosts,
                         "differences": len(c.differences)} for c in comparisons],
            "findings": [{"problem": f.problem, "sequence": f.sequence, "record_id": f.record_id,
                          "message": f.message} for f in findings]}, sort_keys=True))
        return EXIT_OK if ok else EXIT_FINDINGS
    if args.unsigned:
        print("warning: --unsigned: signatures not checked; an edit relinked after it, or a removed tail, goes "
              "unseen", file=sys.stderr)
    if not ok:
        first = findings[0]
        print(f"FAILED: {first.message}")
        if len(findings) > 1:
            print(f"  ({len(findings) - 1} more problem(s) after it; --json lists them all)")
        return EXIT_FINDINGS
    print(f"OK: {report.records} records, chain and columns intact; {report.checkpoints} checkpoints, "
          f"{report.signatures_checked} signatures valid; last signed record {report.last_signed_sequence}"
          + (" (clean stop)" if report.clean_stop else "")
          + (f", {report.unsigned_tail} newer records not yet covered by a signature" if report.unsigned_tail
             else ""))
    for comparison in comparisons:
        print(f"OK: {comparison.compared} records match the SIEM's copy ({comparison.source})"
              + (f"; {comparison.not_yet_delivered} newer not delivered yet" if comparison.not_yet_delivered
                 else ""))
    return EXIT_OK


def run_central(args: argparse.Namespace) -> int:
    if not args.host:
        raise UsageError("--from needs --host NAME: the agent whose records to verify")
    if args.against:
        raise UsageError("--from and --against do not go together")
    if args.page_size < 1:
        raise UsageError("--page-size must be at least 1")
    if args.checkpoint_seconds < 0:
        raise UsageError("--checkpoint-seconds cannot be negative")
    if not args.public_key and not args.unsigned:
        raise UsageError("--from needs --public-key FILE (the agent's key as registered SIEM-side, exported by "
                         "`weightwarden keys`), or --unsigned to check the chain alone")
    public_key = None
    if not args.unsigned:
        try:
            public_key = load_public_key(args.public_key)
        except AgentKeyError as error:
            raise UsageError(f"--public-key: {error}") from None
    source = args.central
    tls = {"ca_file": args.ca_file, "client_cert": args.client_cert, "client_key": args.client_key}
    try:
        policy = TailPolicy(checkpoint_seconds=args.checkpoint_seconds or None)
        report = verify_documents(documents(source, host=args.host, page_size=args.page_size, tls=tls), args.host,
                                  public_key, source, in_order=source.startswith(("http://", "https://")),
                                  policy=policy)
    except CopyError as error:
        raise UsageError(f"--from {source}: {error}") from None
    problem = None
    if report.records == 0:
        problem = (f"no records of host {args.host!r} in {source}"
                   + (f" ({report.other_hosts} documents of other hosts)" if report.other_hosts else ""))
    if args.json:
        print(json.dumps(_central_json(report, problem, signatures=not args.unsigned), sort_keys=True))
        return EXIT_OK if report.ok else EXIT_FINDINGS
    if args.unsigned:
        print("warning: --unsigned: signatures not checked; a chain rewritten in the store goes unseen",
              file=sys.stderr)
    if problem:
        print(f"FAILED: {problem}")
        return EXIT_FINDINGS
    summary = (f"{report.records} records of {args.host} ({report.first_sequence}..{report.last_sequence}"
               + (f", {report.duplicates} duplicate(s) counted once" if report.duplicates else "")
               + f"), {report.missing} missing; {report.checkpoints} checkpoints, {report.signatures_valid} of "
               f"{report.signatures_checked} signatures valid; last signed record {report.last_signed_sequence}"
               + (" (clean stop)" if report.clean_stop else "")
               + (f", {report.unsigned_tail} newer records not covered by a signature" if report.unsigned_tail
                  else ""))
    if report.findings:
        print(f"FAILED: {report.findings[0].message}")
        for finding in report.findings[1:20]:
            print(f"  also: {finding.message}")
        if len(report.findings) > 20:
            print(f"  ({len(report.findings) - 20} more; --json lists them all)")
        print(f"  {summary}")
        return EXIT_FINDINGS
    print(f"OK: {summary}")
    return EXIT_OK


def _central_json(report: CentralReport, problem: str | None, *, signatures: bool) -> dict[str, Any]:
    findings = [{"problem": f.problem, "sequence": f.sequence, "record_id": f.record_id, "message": f.message}
                for f in report.findings]
    if problem:
        findings.insert(0, {"problem": "no-records", "sequence": 0, "record_id": None, "message": problem})
    return {"ok": report.ok, "source": report.source, "host": report.host, "records": report.records,
            "duplicates": report.duplicates, "first_sequence": report.first_sequence,
            "last_sequence": report.last_sequence, "missing": report.missing, "checkpoints": report.checkpoints,
            "signatures_checked": report.signatures_checked, "signatures_valid": report.signatures_valid,
            "last_signed_sequence": report.last_signed_sequence, "unsigned_tail": report.unsigned_tail,
            "other_hosts": report.other_hosts, "clean_stop": report.clean_stop, "last_time": report.last_time,
            "signatures": signatures, "findings": findings}
