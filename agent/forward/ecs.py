"""Elastic Common Schema documents for one record: a pure function, no I/O (ECS 8.x field names)."""

from __future__ import annotations

import ipaddress
from typing import Any

from weightwarden.agent import __version__
from weightwarden.agent.forward.fields import Flat

ECS_VERSION = "8.11.0"

_FILE_TYPES = {
    "model-created": ["creation"], "model-modified": ["change"], "model-moved": ["change"],
    "model-deleted": ["deletion"], "model-discovered": ["info"], "scan-finished": ["info"],
    "discovery-finished": ["info"], "scan-error": ["error"],
    "access-denied": ["access", "denied"], "access-would-deny": ["access", "allowed"],
    "access-break-glass-open": ["access", "allowed"],
}


def document(flat: Flat, host: str) -> dict[str, Any]:
    categories = ["intrusion_detection", "file"] if flat.kind == "alert" else [flat.category]
    doc: dict[str, Any] = {
        "@timestamp": flat.time,
        "ecs": {"version": ECS_VERSION},
        "message": flat.message,
        "event": {
            "kind": flat.kind, "id": flat.id, "sequence": flat.sequence, "action": flat.action,
            "category": categories,
            "type": ["info"] if flat.kind == "alert" else _FILE_TYPES.get(flat.action, ["info"]),
            "severity": flat.severity, "module": "weightwarden", "dataset": f"weightwarden.{flat.kind}",
        },
        "host": {"name": host},
        "agent": {"type": "weightwarden", "version": __version__, "name": host},
        "weightwarden": {"model": flat.model, "details": flat.details},
    }
    if flat.kind == "alert":
        doc["rule"] = {"id": flat.signature, "name": flat.name}
        if flat.attack:
            doc["threat"] = {"framework": "MITRE ATT&CK", "technique": {"id": list(flat.attack)}}
        if flat.atlas:
            doc["weightwarden"]["atlas"] = list(flat.atlas)  # MITRE ATLAS: no ECS field of its own
    if flat.file_path is not None:
        file: dict[str, Any] = {"path": flat.file_path, "name": flat.file_name}
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
        doc["process"] = process
    if flat.user is not None:
        doc["user"] = {"name": flat.user}
    if flat.dest_address or flat.dest_port is not None:
        destination: dict[str, Any] = {}
        if flat.dest_address:
            destination["ip" if _is_ip(flat.dest_address) else "address"] = flat.dest_address
        if flat.dest_port is not None:
            destination["port"] = flat.dest_port
        doc["destination"] = destination
        doc["network"] = {"direction": "egress"}
    return doc


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
