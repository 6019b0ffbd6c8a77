"""OCSF events for one record: a pure function, no I/O. Pinned to OCSF 1.3.0 (docs/forwarding.md says which
record goes to which class and activity; tests/agent/forward/test_schemas.py checks every action's event
against the schema's own definition files, pinned in tests/data/ocsf).

    File System Activity 1001    a model file created, changed, renamed, deleted, opened, read, written; an
                                 open a policy refused or allowed only by break-glass; the agent's evidence
                                 opened for writing; a mount; a file the scan could not read
    Network Activity 4001        an outbound connection (Open, Traffic, Close) with bytes sent and received;
                                 a protected model's server (Listen, Close) and a remote peer's volume
                                 (Traffic, inbound: docs/serving.md)
    Detection Finding 2004       every alert (with finding_info.attacks), a posture finding, a review
    User Access Management 3005  access requests, grants, their end, break-glass
    File Query 5007              a model file a scan found (the agent asked the file system; no actor)
    Scan Activity 6007           a scan or a discovery pass completed
    Application Lifecycle 6002   the agent itself: started, stopped; heartbeats, checkpoints, sensor and
                                 forwarding health, drops, audit summaries, scope changes (Other)

type_uid = class_uid * 100 + activity_id; times are epoch milliseconds; every event carries `device` (the
host profile, listed in metadata.profiles). What OCSF has no attribute for goes in `unmapped`.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any

from weightwarden.agent import __version__
from weightwarden.agent.forward.fields import PRODUCT, VENDOR, Flat
from weightwarden.agent.techniques import Technique, techniques

OCSF_VERSION = "1.3.0"

FILE_SYSTEM_ACTIVITY, NETWORK_ACTIVITY, DETECTION_FINDING = 1001, 4001, 2004
USER_ACCESS, FILE_QUERY, SCAN_ACTIVITY, APPLICATION_LIFECYCLE = 3005, 5007, 6007, 6002
OTHER = 99

# File System Activity activity_id: 1 Create, 2 Read, 3 Update, 4 Delete, 5 Rename, 12 Mount, 13 Unmount, 14 Open
_FILE_ACTIVITY = {
    "model-created": 1, "model-modified": 3, "model-moved": 5, "model-deleted": 4,
    "model-opened": 14, "model-read": 2, "model-written": 3, "model-held": 14,
    "access-denied": 14, "access-would-deny": 14, "access-break-glass-open": 14,
    "evidence-written": 14, "mount-added": 12, "mount-removed": 13, "scan-error": 2,
    # sealing at rest (docs/sealing.md): 10 Encrypt, 11 Decrypt
    "model-sealed": 10, "model-unsealed": 11, "unseal-refused": 11,
}
# User Access Management: 1 Assign Privileges, 2 Revoke Privileges; a request or a refusal is Other
_ACCESS_ACTIVITY = {"access-granted": 1, "access-break-glass": 1, "access-revoked": 2, "access-grant-expired": 2,
                    "access-requested": OTHER, "access-refused": OTHER}
_LIFECYCLE_ACTIVITY = {"agent-started": 3, "agent-stopped": 4}  # 3 Start, 4 Stop
# The agent's own state and upkeep: Application Lifecycle, activity Other (activity_name = the action)
_LIFECYCLE_OTHER = ("heartbeat", "chain-checkpoint", "sensor-health", "forward-health", "events-dropped",
                    "access-fail-open", "audit-summary", "scope-changed")
_SCANS = ("scan-finished", "discovery-finished")
_FINDINGS = ("posture-finding", "alert-reviewed")
_NETWORK_ACTIVITY = {"opened": 1, "progress": 6, "closed": 2}  # 1 Open, 6 Traffic, 2 Close
_SERVING = {"model-served": 7, "model-serving-stopped": 2, "serving-traffic": 6}  # 7 Listen, 2 Close, 6 Traffic


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


def mapped_actions() -> set[str]:
    """The event actions this module maps on purpose (an action not here falls to Application Lifecycle
    Other: tests/agent/forward/test_schemas.py fails for it until it is mapped)."""
    return {*_FILE_ACTIVITY, *_ACCESS_ACTIVITY, *_LIFECYCLE_ACTIVITY, *_LIFECYCLE_OTHER, *_SCANS, *_FINDINGS,
            "network-connection", "model-discovered", *_SERVING}


def class_and_activity(flat: Flat) -> tuple[int, int]:
    """The OCSF class and activity a record is reported as."""
    action = flat.action
    if flat.kind == "alert":
        return DETECTION_FINDING, 1  # Create
    if action in _FINDINGS:
        return DETECTION_FINDING, 2 if action == "alert-reviewed" else 1  # Update | Create
    if action == "network-connection":
        return NETWORK_ACTIVITY, _NETWORK_ACTIVITY.get(flat.phase or "", OTHER)
    if action in _SERVING:
        return NETWORK_ACTIVITY, _SERVING[action]
    if action in _FILE_ACTIVITY:
        return FILE_SYSTEM_ACTIVITY, _FILE_ACTIVITY[action]
    if action in _ACCESS_ACTIVITY:
        return USER_ACCESS, _ACCESS_ACTIVITY[action]
    if action == "model-discovered":
        return FILE_QUERY, 1  # Query
    if action in _SCANS:
        return SCAN_ACTIVITY, 2  # Completed
    return APPLICATION_LIFECYCLE, _LIFECYCLE_ACTIVITY.get(action, OTHER)


def event(flat: Flat, host: str) -> dict[str, Any]:
    class_uid, activity_id = class_and_activity(flat)
    profiles = ["host"]
    doc: dict[str, Any] = {
        "class_uid": class_uid, "category_uid": class_uid // 1000, "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id, "time": flat.time_ms,
        "severity_id": severity_id(flat.severity), "message": flat.message,
        "metadata": {"version": OCSF_VERSION, "uid": flat.id, "sequence": flat.sequence,
                     "product": _product(), "event_code": flat.action, "profiles": profiles},
        "device": {_host_key(host): host, "type_id": 0},  # type 0 Unknown: workstation or server, can't say
        "unmapped": {"model": flat.model, "details": flat.details, "weightwarden_kind": flat.kind},
    }
    if activity_id == OTHER:
        doc["activity_name"] = flat.action
    if class_uid == DETECTION_FINDING:
        _finding(doc, flat)
    elif class_uid == FILE_SYSTEM_ACTIVITY:
        _file_activity(doc, flat, profiles)
    elif class_uid == NETWORK_ACTIVITY:
        (_serving if flat.action in _SERVING else _network)(doc, flat)
    elif class_uid == USER_ACCESS:
        _user_access(doc, flat)
    elif class_uid == FILE_QUERY:
        doc["file"] = _file(flat)
        doc["query_result_id"] = 1  # Exists
        doc["actor"] = _agent_actor()  # host profile: the agent asked (a scan)
    elif class_uid == SCAN_ACTIVITY:
        _scan(doc, flat)
    else:
        doc["app"] = _product()
    actor = _actor(flat)
    if actor and class_uid != FILE_QUERY:
        doc["actor"] = actor
    return doc


# ------------------------------------------------------------------------------------------ per class


def _finding(doc: dict[str, Any], flat: Flat) -> None:
    if flat.kind == "alert":
        info: dict[str, Any] = {"uid": flat.id, "title": flat.name, "desc": flat.message,
                                "analytic": {"uid": flat.signature, "name": flat.signature, "type_id": 1}}  # Rule
        attacks = [_attack(t) for t in techniques(flat.techniques)]
        if attacks:
            info["attacks"] = attacks
        evidence: dict[str, Any] = {}  # what the alert is about: the file (a copy: the copy), process, peer
        if flat.file_path is not None:
            evidence["file"] = _file(flat)
        actor = _actor(flat)
        if actor:
            evidence["actor"] = actor
        destination = _endpoint(flat.dest_address, flat.dest_port)
        if destination:
            evidence["dst_endpoint"] = destination
        if evidence:
            doc["evidences"] = [evidence]
        if flat.old_path is not None:
            doc["unmapped"]["source_path"] = flat.old_path  # a copy's source file
        if flat.dest_kind or flat.dest_path:
            doc["unmapped"]["destination"] = {"kind": flat.dest_kind, "path": flat.dest_path}
    elif flat.action == "alert-reviewed":  # an update of the alert's finding, which keeps the alert's id
        info = {"uid": str(flat.details.get("alert_id") or flat.id), "title": flat.message}
    else:  # posture-finding: a standing weakness of a protected model
        info = {"uid": flat.id, "title": flat.message,
                "analytic": {"uid": str(flat.details.get("finding") or flat.action), "type_id": 1}}
    doc["finding_info"] = info
    if flat.file_path is not None and flat.kind != "alert":
        doc["unmapped"]["file"] = {"path": flat.file_path}


def _attack(item: Technique) -> dict[str, Any]:
    attack: dict[str, Any] = {"technique": _named(item.id, item.name)}
    if item.sub_id is not None:
        attack["sub_technique"] = _named(item.sub_id, item.sub_name)
    return attack


def _named(uid: str, name: str | None) -> dict[str, Any]:
    return {"uid": uid, "name": name} if name else {"uid": uid}


def _file_activity(doc: dict[str, Any], flat: Flat, profiles: list[str]) -> None:
    action = flat.action
    if action in ("mount-added", "mount-removed"):
        point = str(flat.details.get("mount_point") or "/")
        doc["file"] = {"path": point, "name": posixpath.basename(point.rstrip("/")) or "/", "type_id": 2}  # Folder
        doc["actor"] = _unknown_actor()
        return
    if flat.old_path is not None:  # Rename: the file before, and the file it became
        doc["file"] = {"path": flat.old_path, "name": posixpath.basename(flat.old_path), "type_id": 1}
        doc["file_result"] = _file(flat)
    else:
        doc["file"] = _file(flat)
    if action == "scan-error":  # the agent's own read failed
        doc["actor"] = _agent_actor()
        doc["status_id"] = 2  # Failure
        doc["status_detail"] = str(flat.details.get("reason") or flat.message)
    elif flat.pid is None and flat.user is None:
        doc["actor"] = _unknown_actor()
    if action in ("access-denied", "access-would-deny", "access-break-glass-open", "unseal-refused"):
        profiles.append("security_control")
        denied = action in ("access-denied", "unseal-refused")
        doc["action_id"] = 2 if denied else 1  # Denied | Allowed
        doc["disposition_id"] = 2 if denied else 1  # Blocked | Allowed
        if denied:
            doc["status_id"] = 2  # Failure (EPERM)


def _network(doc: dict[str, Any], flat: Flat) -> None:
    doc["dst_endpoint"] = _endpoint(flat.dest_address, flat.dest_port) or {"name": "unknown"}
    source = _endpoint(flat.source_address, flat.source_port)
    if source:
        doc["src_endpoint"] = source
    info: dict[str, Any] = {"direction_id": 2, "direction": "Outbound"}
    if flat.transport:
        info["protocol_name"] = flat.transport
    doc["connection_info"] = info
    traffic = {key: value for key, value in (("bytes_out", flat.bytes_out), ("bytes_in", flat.bytes_in))
               if value is not None}
    if traffic:
        doc["traffic"] = traffic


def _serving(doc: dict[str, Any], flat: Flat) -> None:
    """A protected model's server (docs/serving.md): it listens, stops, or one remote peer's volume, inbound."""
    server: dict[str, Any] = flat.details.get("server") or {}
    doc["dst_endpoint"] = _endpoint(server.get("address"), server.get("port")) or {"name": "unknown"}
    peer: dict[str, Any] = flat.details.get("peer") or {}
    if peer.get("address"):
        doc["src_endpoint"] = _endpoint(str(peer["address"]), None)
    doc["connection_info"] = {"direction_id": 1, "direction": "Inbound", "protocol_name": "tcp"}
    if flat.action == "serving-traffic":
        doc["traffic"] = {"bytes_in": int(flat.details.get("bytes_received") or 0),
                          "bytes_out": int(flat.details.get("bytes_sent") or 0)}


def _user_access(doc: dict[str, Any], flat: Flat) -> None:
    subject = flat.details.get("grant") or flat.details.get("request") or {}
    subject = subject if isinstance(subject, dict) else {}
    if flat.action == "access-break-glass":  # root opened every protected model for everyone
        doc["user"] = {"name": "root", "uid": "0", "type_id": 2}  # Admin
        doc["privileges"] = ["open any protected model (break-glass)"]
        return
    user: dict[str, Any] = {"type_id": 1}  # User
    if subject.get("user"):
        user["name"] = str(subject["user"])
    if subject.get("uid") is not None:
        user["uid"] = str(subject["uid"])
    if "name" not in user and "uid" not in user:
        user["name"] = "unknown"
    doc["user"] = user
    model = subject.get("model") or flat.model or "a protected model"
    program = subject.get("program") or "any program"
    doc["privileges"] = [f"open {model} with {program}"]


def _scan(doc: dict[str, Any], flat: Flat) -> None:
    details = flat.details
    discovery = flat.action == "discovery-finished"
    doc["scan"] = {"type_id": 99 if discovery else 2,  # Other (a discovery pass) | Scheduled
                   "type": "discovery" if discovery else "scan",
                   "name": f"discovery pass {details.get('pass')}" if discovery else "model scan"}
    files = details.get("files")
    if isinstance(files, int):
        doc["num_files"] = files
    seconds = details.get("seconds")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        doc["duration"] = round(seconds * 1000)
    doc["actor"] = _agent_actor()


# ------------------------------------------------------------------------------------------ objects


def _product() -> dict[str, Any]:
    return {"name": PRODUCT, "vendor_name": VENDOR, "version": __version__}


def _agent_actor() -> dict[str, Any]:
    """The agent did it itself (its scan, its failed read)."""
    return {"app_name": PRODUCT}


def _unknown_actor() -> dict[str, Any]:
    """OCSF requires an actor; the file sensor (inotify) and the mount table do not say who acted. OCSF's
    user type 0 is Unknown: a search on actor.user.type_id = 0 finds them, no process is invented."""
    return {"user": {"name": "unknown", "type_id": 0}}


def _file(flat: Flat) -> dict[str, Any]:
    path = flat.file_path or ""
    file: dict[str, Any] = {"path": path, "name": posixpath.basename(path) or path, "type_id": 1}  # Regular File
    if flat.file_size is not None:
        file["size"] = flat.file_size
    if flat.file_sha256:
        file["hashes"] = [{"algorithm_id": 3, "algorithm": "SHA-256", "value": flat.file_sha256}]
    return file


def _endpoint(address: str | None, port: int | None) -> dict[str, Any]:
    endpoint: dict[str, Any] = {}
    if address:
        endpoint["ip" if _is_ip(address) else _host_key(address)] = address
    if port is not None:
        endpoint["port"] = port
    return endpoint


def _actor(flat: Flat) -> dict[str, Any]:
    actor: dict[str, Any] = {}
    if flat.pid is not None:
        process: dict[str, Any] = {"pid": flat.pid}
        if flat.process_name is not None:
            process["name"] = flat.process_name
        if flat.command_line is not None:
            process["cmd_line"] = flat.command_line
        if flat.executable is not None:
            process["file"] = {"path": flat.executable, "name": posixpath.basename(flat.executable) or flat.executable,
                               "type_id": 1}
        if flat.ppid is not None:
            process["parent_process"] = {"pid": flat.ppid}
        if flat.user is not None:
            process["user"] = {"name": flat.user}
        actor["process"] = process
    if flat.user is not None:
        actor["user"] = {"name": flat.user}
    return actor


# A DNS host name (RFC 1123 labels: letters, digits, inner hyphens; dots between): OCSF's hostname_t.
_HOSTNAME = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


def _host_key(name: str) -> str:
    """`hostname` for a DNS name; `name` for anything else (a NetBIOS name with an underscore, a trailing
    dot, a name in another script), which OCSF's hostname type would refuse."""
    return "hostname" if _HOSTNAME.fullmatch(name) else "name"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
