"""OCSF events for one record: a pure function, no I/O. Pinned to OCSF 1.3.0.

Classes: File System Activity 1001, Process Activity 1007, Network Activity 4001, Detection Finding 2004
(every alert), Application Lifecycle 6002 (the agent's own health, heartbeats and checkpoints).
type_uid = class_uid * 100 + activity_id; times are epoch milliseconds.
"""

from __future__ import annotations

from typing import Any

from weightwarden.agent import __version__
from weightwarden.agent.forward.fields import PRODUCT, VENDOR, Flat

OCSF_VERSION = "1.3.0"

_CLASSES = {"file": (1001, 1), "process": (1007, 1), "network": (4001, 4), "host": (6002, 6)}
_FILE_ACTIVITY = {"model-created": 1, "model-discovered": 2, "model-modified": 3, "model-deleted": 4,
                  "model-moved": 5, "model-sealed": 10, "model-unsealed": 11}  # 10 Encrypt, 11 Decrypt
_LIFECYCLE_ACTIVITY = {"agent-started": 3, "agent-stopped": 4}
OTHER = 99


def severity_id(severity: int) -> int:
    """0..10 onto OCSF 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical."""
    if severity >= 9:
        return 5
    if severity >= 7:
        return 4
    if severity >= 4:
        return 3
    if severity >= 1:
        return 2
    return 1


def event(flat: Flat, host: str) -> dict[str, Any]:
    if flat.kind == "alert":
        class_uid, category_uid, activity_id = 2004, 2, 1
    else:
        class_uid, category_uid = _CLASSES.get(flat.category, (6002, 6))
        table = _FILE_ACTIVITY if class_uid == 1001 else _LIFECYCLE_ACTIVITY if class_uid == 6002 else {}
        activity_id = table.get(flat.action, OTHER)
    doc: dict[str, Any] = {
        "class_uid": class_uid, "category_uid": category_uid, "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id, "time": flat.time_ms,
        "severity_id": severity_id(flat.severity), "message": flat.message,
        "metadata": {"version": OCSF_VERSION, "uid": flat.id, "sequence": flat.sequence,
                     "product": {"name": PRODUCT, "vendor_name": VENDOR, "version": __version__},
                     "event_code": flat.action},
        "device": {"hostname": host, "type_id": 0},
        "unmapped": {"model": flat.model, "details": flat.details, "weightwarden_kind": flat.kind},
    }
    actor = _actor(flat)
    if actor:
        doc["actor"] = actor
    if flat.file_path is not None:
        doc["file"] = _file(flat)
    if flat.kind == "alert":
        doc["finding_info"] = {"uid": flat.id, "title": flat.name, "desc": flat.message,
                               "analytic": {"uid": flat.signature, "name": flat.signature, "type_id": 1}}
        if flat.attack:
            doc["finding_info"]["attacks"] = [{"technique": {"uid": t}} for t in flat.attack]
        if flat.atlas:
            doc["unmapped"]["atlas"] = list(flat.atlas)  # MITRE ATLAS: no OCSF object of its own
        if flat.old_path is not None:
            doc["unmapped"]["source_path"] = flat.old_path
    elif class_uid == 1001 and flat.old_path is not None:
        doc["file_result"] = doc.pop("file", {})
        doc["file"] = {"path": flat.old_path, "name": flat.old_path.rsplit("/", 1)[-1], "type_id": 1}
    if flat.dest_address or flat.dest_port is not None:
        doc["dst_endpoint"] = {key: value for key, value in (("ip", flat.dest_address), ("port", flat.dest_port))
                               if value is not None}
    return doc


def _file(flat: Flat) -> dict[str, Any]:
    file: dict[str, Any] = {"path": flat.file_path, "name": flat.file_name, "type_id": 1}
    if flat.file_size is not None:
        file["size"] = flat.file_size
    if flat.file_sha256:
        file["hashes"] = [{"algorithm_id": 3, "algorithm": "SHA-256", "value": flat.file_sha256}]
    return file


def _actor(flat: Flat) -> dict[str, Any]:
    actor: dict[str, Any] = {}
    if flat.pid is not None:
        process: dict[str, Any] = {"pid": flat.pid}
        if flat.process_name is not None:
            process["name"] = flat.process_name
        if flat.command_line is not None:
            process["cmd_line"] = flat.command_line
        if flat.executable is not None:
            process["file"] = {"path": flat.executable, "name": flat.executable.rsplit("/", 1)[-1], "type_id": 1}
        if flat.ppid is not None:
            process["parent_process"] = {"pid": flat.ppid}
        actor["process"] = process
    if flat.user is not None:
        actor["user"] = {"name": flat.user}
    return actor
