"""One flat view of a stored record (event or alert), so every renderer maps the same facts the same way.

An alert's evidence is read as its typed kind (agent/alert_evidence.py): the rule's ATT&CK/ATLAS ids and,
for a copy, the copy's format, size and hash come from typed fields, never from evidence keys.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from weightwarden.agent.alert_evidence import CopyEvidence, DerivedCopyEvidence, atlas_ids, attack_ids, evidence_from
from weightwarden.agent.events import format_time, parse_time

VENDOR = "Weightwarden"
PRODUCT = "Weightwarden Agent"


@dataclass(frozen=True, slots=True)
class Flat:
    kind: str  # event | alert
    id: str
    sequence: int
    time: str  # RFC 3339 UTC, milliseconds
    time_ms: int
    signature: str  # alert rule id or event action
    name: str  # alert title or event message
    message: str
    severity: int  # 0..10
    category: str  # ECS event.category
    action: str
    model: str | None
    file_path: str | None
    file_size: int | None
    file_sha256: str | None
    file_format: str | None
    old_path: str | None
    pid: int | None
    process_name: str | None
    executable: str | None
    command_line: str | None
    user: str | None
    ppid: int | None
    dest_kind: str | None
    dest_address: str | None
    dest_port: int | None
    dest_path: str | None
    details: dict[str, Any]
    techniques: tuple[str, ...] = ()  # an alert's MITRE ATT&CK (T...) and ATLAS (AML.T...) ids
    # A connection's other end and traffic (network-connection events): the local address and port, the
    # transport (tcp | udp), bytes sent and received by the connection, its phase (opened | progress | closed).
    source_address: str | None = None
    source_port: int | None = None
    transport: str | None = None
    bytes_out: int | None = None
    bytes_in: int | None = None
    phase: str | None = None

    @property
    def file_name(self) -> str | None:
        return posixpath.basename(self.file_path) if self.file_path else None

    @property
    def attack(self) -> tuple[str, ...]:
        return attack_ids(self.techniques)

    @property
    def atlas(self) -> tuple[str, ...]:
        return atlas_ids(self.techniques)


def flatten(kind: str, record: dict[str, Any]) -> Flat:
    process = record.get("process") or {}
    moment = parse_time(record["time"])
    time_ms = int(moment.timestamp() * 1000)
    time = format_time(moment)  # canonical RFC 3339 (a stored time is already; a row rewritten by hand may not be)
    if kind == "alert":
        paths = list(record.get("paths") or [])
        destination = record.get("destination") or {}
        evidence = evidence_from(record.get("evidence"))
        # A copy alert's file is the copy: its format and size, and its SHA-256 when known to be the source's.
        size = fmt = sha256 = None
        if isinstance(evidence, CopyEvidence):
            size, fmt = evidence.size, evidence.format
            sha256 = evidence.sha256 if evidence.matched_on == "sha256" else None
        elif isinstance(evidence, DerivedCopyEvidence):
            size, fmt, sha256 = evidence.size, evidence.format, evidence.sha256
        return Flat(
            kind, record["id"], int(record.get("sequence", 0)), time, time_ms,
            signature=record.get("rule") or "alert", name=record.get("title") or record.get("rule") or "alert",
            message=record.get("message") or "", severity=_severity(record.get("severity")),
            category="intrusion_detection", action=record.get("rule") or "alert", model=record.get("model"),
            file_path=paths[-1] if paths else destination.get("path"), file_size=size, file_sha256=sha256,
            file_format=fmt, old_path=paths[0] if len(paths) > 1 else None,
            pid=process.get("pid"), process_name=process.get("name"), executable=process.get("executable"),
            command_line=process.get("command_line"), user=process.get("user"), ppid=process.get("ppid"),
            dest_kind=destination.get("kind"), dest_address=destination.get("address"),
            dest_port=destination.get("port"), dest_path=destination.get("path"),
            details=dict(record.get("evidence") or {}), techniques=evidence.techniques)
    event = record.get("event") or {}
    file = record.get("file") or {}
    details = dict(record.get("details") or {})
    # A connection's ends are details of its event (agent/pipeline/activity_events.py connection_event).
    network = details if event.get("category") == "network" else {}
    destination = _mapping(network.get("destination"))
    source = _mapping(network.get("source"))
    return Flat(
        kind, record["id"], int(record.get("sequence", 0)), time, time_ms,
        signature=event.get("action") or "event", name=record.get("message") or event.get("action") or "event",
        message=record.get("message") or "", severity=_severity(event.get("severity")),
        category=event.get("category") or "host", action=event.get("action") or "event", model=record.get("model"),
        file_path=file.get("path"), file_size=file.get("size"), file_sha256=file.get("sha256"),
        file_format=file.get("format"), old_path=record.get("previous_path"),
        pid=process.get("pid"), process_name=process.get("name"), executable=process.get("executable"),
        command_line=process.get("command_line"), user=process.get("user"), ppid=process.get("ppid"),
        dest_kind=_text(destination.get("kind")), dest_address=_text(destination.get("address")),
        dest_port=_integer(destination.get("port")), dest_path=None, details=details,
        source_address=_text(source.get("address")), source_port=_integer(source.get("port")),
        transport=_text(_mapping(network.get("network")).get("transport")),
        bytes_out=_integer(network.get("bytes_sent")), bytes_in=_integer(network.get("bytes_received")),
        phase=_text(network.get("phase")))


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _severity(value: object) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return 0
    return min(10, max(0, number))
