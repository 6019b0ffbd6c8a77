"""Elastic Common Schema documents for one record: a pure function, no I/O (ECS 8.17; docs/forwarding.md
lists the fields; tests/agent/forward/test_schemas.py checks every action's document against ECS's own
field definitions and allowed values, pinned in tests/data/ecs).

event.category and event.type come from one table per action (every type allowed for one of the event's
categories, every category with one of its types). A connection's ends go to source.*/destination.*, its
transport, direction and bytes to network.*; an alert's ATT&CK and ATLAS ids to threat.*. What ECS has no
field for goes under `weightwarden.*`: the model, and the record's details, whose keys keep one JSON type
across all actions (a name for a string, another name for an object) so one index mapping takes them all.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from weightwarden.agent import __version__
from weightwarden.agent.forward.fields import Flat
from weightwarden.agent.techniques import ATLAS, ATTACK, techniques

ECS_VERSION = "8.17.0"

# action -> (event.category, event.type)
_CATEGORIZATION: dict[str, tuple[list[str], list[str]]] = {
    "model-created": (["file"], ["creation"]),
    "model-modified": (["file"], ["change"]),
    "model-moved": (["file"], ["change"]),
    "model-deleted": (["file"], ["deletion"]),
    "model-discovered": (["file"], ["info"]),
    "model-opened": (["file"], ["access"]),
    "model-read": (["file"], ["access"]),
    "model-written": (["file"], ["change"]),
    "model-held": (["file"], ["access"]),
    "scan-finished": (["file"], ["info"]),
    "discovery-finished": (["file"], ["info"]),
    "scan-error": (["file"], ["access"]),  # the agent's read failed: event.outcome failure
    "posture-finding": (["configuration", "file"], ["info"]),
    "audit-summary": (["configuration", "file"], ["info"]),
    "access-denied": (["file", "intrusion_detection"], ["access", "denied"]),
    "access-would-deny": (["file", "intrusion_detection"], ["access", "allowed"]),  # monitor: the open went on
    "access-break-glass-open": (["file", "intrusion_detection"], ["access", "allowed"]),
    "access-fail-open": (["intrusion_detection"], ["allowed"]),
    "evidence-written": (["file", "intrusion_detection"], ["change", "info"]),
    "alert-reviewed": (["intrusion_detection"], ["info"]),
    "mount-added": (["host"], ["change"]),
    "mount-removed": (["host"], ["change"]),
    "agent-started": (["host"], ["start"]),
    "agent-stopped": (["host"], ["end"]),
    "heartbeat": (["host"], ["info"]),
    "chain-checkpoint": (["host"], ["info"]),
    "sensor-health": (["host"], ["info"]),
    "forward-health": (["host"], ["info"]),
    "events-dropped": (["host"], ["info"]),
    "scope-changed": (["configuration"], ["change"]),
    "access-requested": (["iam"], ["info"]),
    "access-refused": (["iam"], ["info"]),
    "access-granted": (["iam"], ["admin", "creation"]),
    "access-break-glass": (["iam"], ["admin", "change"]),
    "access-revoked": (["iam"], ["admin", "deletion"]),
    "access-grant-expired": (["iam"], ["deletion"]),
    "network-connection": (["network"], ["connection"]),  # + start | end by phase (categorization below)
    # model servers (docs/serving.md): a protected model's server listens, stops, a remote peer's volume
    "model-served": (["network"], ["start"]),
    "model-serving-stopped": (["network"], ["end"]),
    "serving-traffic": (["network"], ["connection"]),
    # sealing at rest (docs/sealing.md)
    "model-sealed": (["file"], ["change"]),
    "model-unsealed": (["file"], ["access"]),
    "unseal-refused": (["file", "intrusion_detection"], ["access", "denied"]),
}
_CONNECTION_TYPES = {"opened": ["connection", "start"], "closed": ["connection", "end"]}
_FAILURES = ("scan-error", "access-denied", "unseal-refused")

# Detail keys that name different things in different actions: renamed so each key has one JSON type.
# forward-health and events-dropped name their destination (a string); a connection's is an object.
_RENAMED = {("forward-health", "destination"): "destination_name",
            ("events-dropped", "destination"): "destination_name"}
# A connection's details that ECS fields now carry (source.*, destination.*, network.*).
_MAPPED = {"network-connection": ("destination", "source", "network", "bytes_sent", "bytes_received")}


def mapped_actions() -> set[str]:
    """The event actions with a categorization of their own (others fall to host/info: a test fails)."""
    return set(_CATEGORIZATION)


def categorization(flat: Flat) -> tuple[list[str], list[str]]:
    """event.category and event.type of a record."""
    if flat.kind == "alert":
        categories = ["intrusion_detection"]
        if flat.file_path is not None:
            categories.append("file")
        if flat.dest_address:
            categories.append("network")
        return categories, ["info"]
    if flat.action == "network-connection":
        return ["network"], list(_CONNECTION_TYPES.get(flat.phase or "", ["connection"]))
    categories, types = _CATEGORIZATION.get(flat.action, (["host"], ["info"]))
    return list(categories), list(types)


def details(flat: Flat) -> dict[str, Any]:
    """The record's details under weightwarden.details: mapped parts left out, clashing keys renamed."""
    mapped = _MAPPED.get(flat.action, ())
    return {_RENAMED.get((flat.action, key), key): value for key, value in flat.details.items()
            if key not in mapped}


def document(flat: Flat, host: str) -> dict[str, Any]:
    categories, types = categorization(flat)
    doc: dict[str, Any] = {
        "@timestamp": flat.time,
        "ecs": {"version": ECS_VERSION},
        "message": flat.message,
        "event": {
            "kind": flat.kind, "id": flat.id, "sequence": flat.sequence, "action": flat.action,
            "category": categories, "type": types,
            "severity": flat.severity, "module": "weightwarden", "dataset": f"weightwarden.{flat.kind}",
        },
        "host": {"name": host, "hostname": host},
        "agent": {"type": "weightwarden", "version": __version__, "name": host},
        "weightwarden": {"model": flat.model},
    }
    # An event's details and an alert's evidence are different objects: each has a name of its own.
    doc["weightwarden"]["evidence" if flat.kind == "alert" else "details"] = details(flat)
    if flat.action in _FAILURES:
        doc["event"]["outcome"] = "failure"
    if flat.kind == "alert":
        doc["rule"] = {"id": flat.signature, "name": flat.name}
        threat = _threat(flat)
        if threat:
            doc["threat"] = threat
        if flat.atlas:
            doc["weightwarden"]["atlas"] = list(flat.atlas)
    if flat.file_path is not None:
        file: dict[str, Any] = {"path": flat.file_path, "name": flat.file_name, "type": "file"}
        if flat.file_size is not None:
            file["size"] = flat.file_size
        if flat.file_sha256:
            file["hash"] = {"sha256": flat.file_sha256}
        if flat.old_path is not None:
            doc["weightwarden"]["source_path"] = flat.old_path
        doc["file"] = file
    if flat.pid is not None:
        process: dict[str, Any] = {"pid": flat.pid}
        for key, value in (("name", flat.process_name), ("executable", flat.executable),
                           ("command_line", flat.command_line)):
            if value is not None:
                process[key] = value
        if flat.ppid is not None:
            process["parent"] = {"pid": flat.ppid}
        if flat.user is not None:
            process["user"] = {"name": flat.user}
        doc["process"] = process
    if flat.user is not None:
        doc["user"] = {"name": flat.user}
    _network(doc, flat)
    _related(doc, flat)
    return doc


def _threat(flat: Flat) -> dict[str, Any]:
    """threat.framework and threat.technique.{id,name,subtechnique.*}: ATT&CK ids, and ATLAS ids (ECS has
    no field of its own for ATLAS: its framework is named in threat.framework beside ATT&CK)."""
    items = techniques(flat.techniques)
    if not items:
        return {}
    frameworks = [name for name in (ATTACK, ATLAS) if any(t.framework == name for t in items)]
    technique: dict[str, Any] = {"id": _unique(t.id for t in items)}
    names = _unique(t.name for t in items if t.name)
    if names:
        technique["name"] = names
    subs = [t for t in items if t.sub_id is not None]
    if subs:
        technique["subtechnique"] = {"id": _unique(t.sub_id for t in subs)}
        sub_names = _unique(t.sub_name for t in subs if t.sub_name)
        if sub_names:
            technique["subtechnique"]["name"] = sub_names
    return {"framework": frameworks[0] if len(frameworks) == 1 else frameworks, "technique": technique}


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _network(doc: dict[str, Any], flat: Flat) -> None:
    if not (flat.dest_address or flat.dest_port is not None):
        return
    destination = _endpoint(flat.dest_address, flat.dest_port)
    if flat.bytes_in is not None:
        destination["bytes"] = flat.bytes_in  # what the destination sent
    doc["destination"] = destination
    network: dict[str, Any] = {"direction": "egress"}  # the host's point of view (ECS network.direction)
    if flat.source_address or flat.source_port is not None:
        source = _endpoint(flat.source_address, flat.source_port)
        if flat.bytes_out is not None:
            source["bytes"] = flat.bytes_out  # what the source (this host) sent
        doc["source"] = source
    if flat.transport:
        network["transport"] = flat.transport
    if flat.dest_address and _is_ip(flat.dest_address):
        network["type"] = "ipv6" if ":" in flat.dest_address else "ipv4"
    if flat.bytes_out is not None or flat.bytes_in is not None:
        network["bytes"] = (flat.bytes_out or 0) + (flat.bytes_in or 0)
    doc["network"] = network


def _endpoint(address: str | None, port: int | None) -> dict[str, Any]:
    endpoint: dict[str, Any] = {}
    if address:
        endpoint["address"] = address
        endpoint["ip" if _is_ip(address) else "domain"] = address
    if port is not None:
        endpoint["port"] = port
    return endpoint


def _related(doc: dict[str, Any], flat: Flat) -> None:
    related: dict[str, list[str]] = {}
    ips = [a for a in (flat.source_address, flat.dest_address) if a and _is_ip(a)]
    if ips:
        related["ip"] = _unique(ips)
    if flat.dest_address and not _is_ip(flat.dest_address):
        related["hosts"] = [flat.dest_address]
    if flat.user:
        related["user"] = [flat.user]
    if flat.file_sha256:
        related["hash"] = [flat.file_sha256]
    if related:
        doc["related"] = related


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
