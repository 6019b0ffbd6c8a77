"""`weightwarden verify --from URL --host NAME`: one agent's records as the central store holds them, verified
there (hash chain and signed checkpoints) without the endpoint, so a wiped or rewritten machine cannot hide
what it already sent.

The store is an OpenSearch/Elasticsearch index (or pattern) or a JSON-lines file (siem_copy.documents reads
both). Each forwarded ECS or native document carries its place in the chain (forward/documents.py
add_chain): the exact chained text, its link and the link before it. So every record is checked on its own
(link = SHA-256(previous || kind || text), store/chain.py) and against its neighbour (its `previous` is the
link of the record before), an ECS document's visible fields against the chained text it carries (the
document is rendered again from that text), and each checkpoint's Ed25519 signature with the given public
key, bound to the link of the record it signs.

What is named: records missing between two that are there (a gap: deleted centrally, or never delivered),
records missing after the last one (a tail: no chain can show it, since the checkpoints that would sign it
went with it; it is named when the newest records are older than the agent lets a record stay unsigned,
with no clean stop: the agent was killed, or the tail was removed), a record whose content or link was
changed, a checkpoint whose signature fails, duplicates that disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from weightwarden.agent.events import parse_time, utc_now
from weightwarden.agent.forward.render import Renderer
from weightwarden.agent.keys import key_id as public_key_id
from weightwarden.agent.siem_copy import digest
from weightwarden.agent.store import derived
from weightwarden.agent.store.chain import GENESIS, checkpoint_verifies, link, signed_point
from weightwarden.agent.store.outbox import ChainPlace, OutboxRecord

_KEEP_LINKS = 65_536  # links of the newest records kept for the checkpoints that follow them


@dataclass(frozen=True)
class CentralFinding:
    """`problem`: missing (a gap followed by records), missing-tail (records absent after the last one stored),
    altered, signature, unchained, duplicate."""

    problem: str
    sequence: int
    record_id: str | None
    message: str


@dataclass
class CentralReport:
    source: str
    host: str
    records: int = 0  # distinct records found
    duplicates: int = 0  # identical copies of a record (at-least-once delivery), counted once
    first_sequence: int = 0
    last_sequence: int = 0
    missing: int = 0  # sequence numbers absent between the first record and the last known one
    checkpoints: int = 0
    signatures_checked: int = 0
    signatures_valid: int = 0
    last_signed_sequence: int = 0
    other_hosts: int = 0
    clean_stop: bool = False  # the newest signature is a clean shutdown's and nothing started after it
    last_time: str | None = None  # of the newest record
    findings: list[CentralFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.records > 0 and not self.findings

    @property
    def unsigned_tail(self) -> int:
        return max(0, self.last_sequence - self.last_signed_sequence)


@dataclass(frozen=True, slots=True)
class _Found:
    sequence: int
    kind: str
    id: str
    text: str | None  # the chained text, None when the document carries no chain place
    hash: str | None
    previous: str | None
    problem: str | None  # what the document itself gets wrong (fields against its chained text)


def _part(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    return value if isinstance(value, dict) else {}


def _found(doc: dict[str, Any], host: str) -> _Found | None:
    """One document of `host` as the verification needs it; None for another host's or a non-record."""
    if "ecs" in doc and isinstance(doc.get("event"), dict):
        event = _part(doc, "event")
        if _part(doc, "host").get("name") != host:
            return None
        try:
            sequence = int(event["sequence"])
        except (KeyError, TypeError, ValueError):
            return None
        chain = _part(_part(doc, "weightwarden"), "chain")
        text, kind, record_id = event.get("original"), str(event.get("kind", "")), str(event.get("id", ""))
        if not isinstance(text, str) or not chain:
            return _Found(sequence, kind, record_id, None, None, None, None)
        problem = None
        try:
            record = json.loads(text)
            place = ChainPlace(text, str(chain.get("hash")), str(chain.get("previous")))
            again = Renderer(host=host, format="ecs").document(OutboxRecord(sequence, kind, record_id, record,
                                                                            chain=place))
            if digest(again, chain=True) != digest(doc, chain=True):
                problem = ("its document's fields differ from the chained record it carries (event.original): "
                           "the document was edited in the store")
        except (ValueError, TypeError, KeyError, AttributeError):
            problem = "the chained record it carries (event.original) cannot be read"
        return _Found(sequence, kind, record_id, text, str(chain.get("hash")), str(chain.get("previous")), problem)
    if "id" in doc and "sequence" in doc and "kind" in doc and "ecs" not in doc:
        if doc.get("host") != host:
            return None
        try:
            sequence = int(doc["sequence"])
        except (TypeError, ValueError):
            return None
        chain = _part(doc, "chain")
        record = {key: value for key, value in doc.items() if key not in ("kind", "host", "chain")}
        if not chain:
            return _Found(sequence, str(doc["kind"]), str(doc["id"]), None, None, None, None)
        # The stored text is json.dumps(record, sort_keys=True) (store/store.py): the same call gives it back.
        return _Found(sequence, str(doc["kind"]), str(doc["id"]), json.dumps(record, sort_keys=True),
                      str(chain.get("hash")), str(chain.get("previous")), None)
    return None


def _is_other_host(doc: dict[str, Any]) -> bool:
    return ("ecs" in doc and isinstance(doc.get("event"), dict)) or ("id" in doc and "kind" in doc)


@dataclass(frozen=True)
class TailPolicy:
    """How old the newest records may be before their absence of signatures is a finding: the agent signs
    every `checkpoint_seconds` (its `[agent]` setting, default 300) and writes a heartbeat every
    `heartbeat_seconds`; None leaves the tail alone. `now`: when the check runs (tests pass their own)."""

    checkpoint_seconds: float | None = 300.0
    heartbeat_seconds: float = 60.0
    now: datetime | None = None


class _Verifier:
    def __init__(self, report: CentralReport, public_key: Ed25519PublicKey | None, policy: TailPolicy) -> None:
        self.report = report
        self.policy = policy
        self.unsigned: list[tuple[int, str]] = []  # (sequence, time) of records after the newest signed one
        self.signed_by = 0  # sequence of the checkpoint that gave the newest signature, negative for a stop's
        self.last_started = 0
        self.public_key = public_key
        self.key_id = public_key_id(public_key) if public_key is not None else None
        self.links: dict[int, str] = {}  # sequence -> link, of records whose content matches their link
        self.previous: _Found | None = None
        self.deferred: list[tuple[_Found, dict[str, Any]]] = []

    def found(self, problem: str, sequence: int, record_id: str | None, message: str) -> None:
        self.report.findings.append(CentralFinding(problem, sequence, record_id, message))

    def add(self, item: _Found) -> None:
        report, before = self.report, self.previous
        name = f"record {item.sequence} ({item.kind} {item.id})"
        if before is not None and item.sequence == before.sequence:
            if (item.id, item.text, item.hash) == (before.id, before.text, before.hash):
                report.duplicates += 1
            else:
                self.found("duplicate", item.sequence, item.id,
                           f"{name}: the store holds another, different record {before.sequence} ({before.id}): "
                           "one of them was inserted or changed")
            return
        report.records += 1
        report.first_sequence = report.first_sequence or item.sequence
        report.last_sequence = item.sequence
        expected = before.sequence + 1 if before is not None else 1
        if item.sequence > expected:
            report.missing += item.sequence - expected
            gap = f"{expected}" if item.sequence == expected + 1 else f"{expected}..{item.sequence - 1}"
            after = f"after record {before.sequence} ({before.id}) " if before is not None else "at the start "
            self.found("missing", expected, None,
                       f"record(s) {gap} are not in the store {after}but {name} is: deleted centrally, or never "
                       "delivered (`weightwarden sync status` on the endpoint lists dead letters)")
        self.previous = item
        if item.text is None or item.hash is None or item.previous is None:
            self.found("unchained", item.sequence, item.id,
                       f"{name} carries no chain place (forwarded by an older agent, or as OCSF): it cannot "
                       "be verified")
            return
        if item.problem:
            self.found("altered", item.sequence, item.id, f"{name} was altered: {item.problem}")
        if link(item.previous, item.kind, item.text) != item.hash:
            self.found("altered", item.sequence, item.id,
                       f"{name} was altered: its content no longer matches its chain link")
            return
        if item.sequence == 1 and item.previous != GENESIS:
            self.found("altered", item.sequence, item.id, f"{name} does not start the chain")
        if before is not None and before.sequence == item.sequence - 1 and before.hash is not None \
                and item.previous != before.hash:
            self.found("altered", item.sequence, item.id,
                       f"{name} does not chain to record {before.sequence} ({before.id}): one of them was "
                       "rewritten")
        self.links[item.sequence] = item.hash
        if len(self.links) > 2 * _KEEP_LINKS:
            self.links = {s: h for s, h in self.links.items() if s > item.sequence - _KEEP_LINKS}
        try:
            data = json.loads(item.text)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        time_text = data.get("time")
        if isinstance(time_text, str):
            self.report.last_time = time_text
        action = derived.chained_action(item.kind, data)
        if action == "agent-started":
            self.last_started = item.sequence
        signed = derived.checkpoint_details(item.kind, data)
        if signed is not None:
            self.report.checkpoints += 1
            self.checkpoint(item, signed, stop=action == "agent-stopped")
        elif isinstance(time_text, str):
            self.unsigned.append((item.sequence, time_text))

    def checkpoint(self, item: _Found, details: dict[str, Any], *, stop: bool = False, deferred: bool = False
                   ) -> None:
        report = self.report
        where = f"checkpoint {item.sequence} ({item.id})"
        signed_sequence, signed_hash = signed_point(details)
        if signed_sequence >= item.sequence and not deferred:
            self.deferred.append((item, {**details, "_stop": stop}))
            return
        if self.public_key is not None:
            report.signatures_checked += 1
            if not checkpoint_verifies(details, self.public_key, self.key_id):
                self.found("signature", item.sequence, item.id,
                           f"{where}: its signature does not verify with agent key {self.key_id}")
                return
            report.signatures_valid += 1
        if signed_sequence > report.last_sequence:
            self.found("missing-tail", report.last_sequence + 1, None,
                       f"record(s) {report.last_sequence + 1}..{signed_sequence} are not in the store: {where} "
                       f"signed record {signed_sequence}, the store ends at {report.last_sequence}")
            report.missing += signed_sequence - report.last_sequence
            return
        known = self.links.get(signed_sequence)
        if known is None:
            return  # that record is missing (named as a gap) or failed its own check: nothing to bind
        if known != signed_hash:
            self.found("altered", signed_sequence, None,
                       f"record {signed_sequence} or one before it was altered: its chain link differs from the "
                       f"one signed by {where}")
            return
        if self.public_key is not None and signed_sequence >= report.last_signed_sequence:
            report.last_signed_sequence = signed_sequence
            self.unsigned = [(s, t) for s, t in self.unsigned if s > signed_sequence]
            self.signed_by = -item.sequence if stop else item.sequence

    def finish(self) -> None:
        for item, details in self.deferred:
            self.checkpoint(item, details, stop=bool(details.pop("_stop")), deferred=True)
        if self.public_key is not None:
            self.tail()
        self.report.findings.sort(key=lambda finding: finding.sequence)

    def tail(self) -> None:
        """Records after the last one stored leave no mark in the chain: the checkpoints that would sign
        them went with them. What shows is age: records no signature covers, older than the agent lets
        them be, or a store that ends long ago, in both cases without a clean stop (store/chain.py's
        local check, on the central copy)."""
        report, policy = self.report, self.policy
        report.clean_stop = self.signed_by < 0 and self.last_started < -self.signed_by
        if policy.checkpoint_seconds is None or report.clean_stop or report.records == 0:
            return
        now = policy.now or utc_now()
        limit = timedelta(seconds=2 * policy.checkpoint_seconds)
        oldest = next(((s, t) for s, t in self.unsigned if s > report.last_signed_sequence), None)
        try:
            if oldest is not None:
                age = now - parse_time(oldest[1])
                if age > limit:
                    self.found("missing-tail", oldest[0], None,
                               f"records {oldest[0]}..{report.last_sequence} are covered by no signature and the "
                               f"oldest is dated {oldest[1]}, more than twice the checkpoint interval "
                               f"({policy.checkpoint_seconds:g} s) ago, with no clean stop after them: the agent "
                               "was killed, or the records after them (with the checkpoints that signed them) were "
                               "removed from the store or never delivered")
                return
            age = now - parse_time(report.last_time or "")
        except ValueError:
            return
        if age > timedelta(seconds=2 * max(policy.checkpoint_seconds, policy.heartbeat_seconds)):
            self.found("missing-tail", report.last_sequence + 1, None,
                       f"the store ends at record {report.last_sequence} ({report.last_time}) without a clean "
                       "stop: the agent went silent, or the records after it were removed from the store or "
                       "never delivered")


def verify_documents(documents: Iterable[dict[str, Any]], host: str, public_key: Ed25519PublicKey | None,
                     source: str = "", *, in_order: bool = False, policy: TailPolicy | None = None
                     ) -> CentralReport:
    """Verify `host`'s records among `documents`. An index gives them in sequence order (`in_order`: each is
    checked as it comes, memory stays flat); a JSON-lines file in the order written (a resend after a restart
    repeats some, several agents interleave), so its records are sorted first."""
    report = CentralReport(source, host)
    verifier = _Verifier(report, public_key, policy or TailPolicy())
    items: list[_Found] = []
    for doc in documents:
        item = _found(doc, host)
        if item is None:
            report.other_hosts += _is_other_host(doc)
        elif in_order:
            verifier.add(item)
        else:
            items.append(item)
    for item in sorted(items, key=lambda found: found.sequence):
        verifier.add(item)
    verifier.finish()
    return report
