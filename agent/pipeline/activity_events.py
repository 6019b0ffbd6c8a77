"""What the activity sensors saw, as Events: ECS process.* with its parent chain, file.*, destination.*;
and a change of the agent's scope (agent/scope) as one event naming the users and roots added and removed.

Pure translations, run on the dispatcher's thread: an access observation is matched with the inventory as it
stands at that point of the ordered stream, so a file inventoried just before is seen with its model.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from weightwarden.agent.access.gate import Verdict
from weightwarden.agent.events import Action, Category, Event, FileInfo, display_path
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.scope.scope import Scope
from weightwarden.agent.sensors.access import AccessFailOpen, AccessObservation
from weightwarden.agent.sensors.evidence_guard import EvidenceTouch
from weightwarden.agent.sensors.files import SensorHealth
from weightwarden.agent.sensors.mounts import MountObservation
from weightwarden.agent.sensors.network import NETNS_BOUND, ConnectionObservation

_ACCESS_ACTIONS = {"opened": Action.MODEL_OPENED, "read": Action.MODEL_READ, "written": Action.MODEL_WRITTEN,
                   "held": Action.MODEL_HELD}
_ACCESS_VERBS = {"opened": "opened", "read": "read", "written": "wrote", "held": "holds open"}
_NOTABLE_MOUNTS = ("removable", "network-share", "cloud-sync", "disk-image")


def decision_details(verdict: Verdict) -> dict[str, Any]:
    """details.decision of an open a policy governs: what was asked, what the policy said and why."""
    decision = verdict.decision
    return {"policy": decision.policy_id, "allowed": decision.allowed, "enforced": decision.enforced,
            "reason": decision.reason, "access": verdict.access, "access_known": verdict.access_known,
            "grant": decision.grant_id, "break_glass": decision.break_glass}


def verdict_event(obs: AccessObservation, inventory: Inventory, at: datetime) -> Event | None:
    """The record of an open the policy refused (enforced: it failed; monitor: it would have) or let in only
    by break-glass; None for an open it simply allowed (the open's own event carries that decision)."""
    verdict = obs.verdict
    if verdict is None or not verdict.notable:
        return None
    decision = verdict.decision
    model = inventory.get(obs.path) or inventory.at_inode(obs.device, obs.inode)
    process = obs.process
    who = f"{process.name or '?'} (pid {process.pid}, user {process.user or process.uid})"
    file = _model_file(obs, model)
    if not decision.allowed and decision.enforced:
        action, verb = Action.ACCESS_DENIED, "was refused"
    elif not decision.allowed:
        action, verb = Action.ACCESS_WOULD_DENY, "opened, against the policy (monitor mode),"
    else:
        action, verb = Action.ACCESS_BREAK_GLASS_OPEN, "opened, under break-glass,"
    return Event(action, Category.FILE,
                 f"{who} {verb} {verdict.access} access to {file.path}: {decision.reason}", file=file,
                 model=model.model if model else None, process=process,
                 details={"decision": decision_details(verdict)}, time=at)


def fail_open_event(obs: AccessFailOpen, at: datetime) -> Event:
    return Event(Action.ACCESS_FAIL_OPEN, Category.HOST,
                 f"{obs.count} opens of protected models allowed without a policy decision: {obs.reason}",
                 details={"count": obs.count, "reason": obs.reason}, time=at)


def _model_file(obs: AccessObservation, model: Any) -> FileInfo:
    return FileInfo.at(model.path if model else obs.path, size=obs.size, inode=obs.inode, device=obs.device,
                       format=model.format if model else None, sha256=model.sha256 if model else None,
                       quick_fingerprint=model.quick_fingerprint if model else None)


def access_event(obs: AccessObservation, inventory: Inventory, at: datetime) -> Event:
    model = inventory.get(obs.path) or inventory.at_inode(obs.device, obs.inode)  # renamed since it was marked
    process = obs.process
    if obs.kind in ("read", "held"):
        process = replace(process, bytes_read=obs.bytes_read, mapped=obs.mapped)
    who = f"{process.name or '?'} (pid {process.pid}, user {process.user or process.uid})"
    details: dict[str, Any] = {}
    if obs.verdict is not None:
        details["decision"] = decision_details(obs.verdict)
    if obs.kind in ("read", "held"):
        details["access"] = {
            "bytes_read": obs.bytes_read, "bytes_read_source": obs.bytes_read_source,
            "mapped": obs.mapped, "seconds_open": obs.seconds_open,
            "mode": "mmap" if obs.mapped else ("read" if obs.bytes_read else "unknown"),
            "read_fraction": round(obs.bytes_read / obs.size, 4) if obs.bytes_read and obs.size else None,
        }
    how = ""
    if obs.kind == "read":
        how = " (memory-mapped)" if obs.mapped else (
            f" ({obs.bytes_read} bytes)" if obs.bytes_read is not None else "")
    file = _model_file(obs, model)
    return Event(
        _ACCESS_ACTIONS[obs.kind], Category.FILE, f"{who} {_ACCESS_VERBS[obs.kind]} {file.path}{how}", file=file,
        model=model.model if model else None, process=process, details=details, time=at)


def connection_event(obs: ConnectionObservation, at: datetime) -> Event:
    who = f"{obs.process.name} (pid {obs.process.pid})" if obs.process else "unknown process"
    bound = "at most " if obs.bytes_source == NETNS_BOUND else ""
    sent = (f", {bound}{obs.bytes_sent} bytes sent" if obs.bytes_sent is not None and obs.phase != "opened"
            else "")
    verb = {"opened": "connected to", "progress": "is sending to"}.get(obs.phase, "closed connection to")
    udp = " (UDP)" if obs.protocol == "udp" else ""
    return Event(
        Action.NETWORK_CONNECTION, Category.NETWORK, f"{who} {verb} {obs.remote}:{obs.remote_port}{udp}{sent}",
        process=obs.process, time=at,
        details={"phase": obs.phase, "destination": {"kind": "network", "address": obs.remote,
                                                      "port": obs.remote_port},
                 "source": {"address": obs.local, "port": obs.local_port}, "netns": obs.netns,
                 "network": {"transport": obs.protocol},
                 "bytes_sent": obs.bytes_sent, "bytes_received": obs.bytes_received,
                 "bytes_acked": obs.bytes_acked, "bytes_source": obs.bytes_source, "final": obs.final,
                 "owner": obs.owner, "seconds": obs.seconds})


def mount_event(obs: MountObservation, at: datetime) -> Event:
    m = obs.mount
    return Event(
        Action.MOUNT_ADDED if obs.phase == "added" else Action.MOUNT_REMOVED, Category.HOST,
        f"{m.kind} mount {obs.phase}: {m.mount_point} ({m.fstype} from {m.source})",
        severity=2 if m.kind in _NOTABLE_MOUNTS and obs.phase == "added" else 0, time=at,
        details={"mount_point": m.mount_point, "fstype": m.fstype, "source": m.source, "kind": m.kind,
                 "options": m.options, "backing_file": m.backing_file})


def health_event(health: SensorHealth, at: datetime) -> Event:
    return Event(Action.SENSOR_HEALTH, Category.HOST, f"{health.sensor}: {health.status}: {health.message}",
                 severity=0 if health.status == "running" else 3,
                 details={"sensor": health.sensor, "status": health.status}, time=at)


def scope_change_event(before: Scope, after: Scope, at: datetime) -> Event | None:
    """One event naming the users and roots added and removed (what a rescan then covers); None when
    neither changed (a missing place's description, a problem line: shown by status, not recorded)."""
    users_before = {u.name for u in before.users}
    users_after = {u.name for u in after.users}
    added, removed = _new(users_after, users_before), _new(users_before, users_after)
    roots_added = _new(set(after.protected_roots), set(before.protected_roots))
    roots_removed = _new(set(before.protected_roots), set(after.protected_roots))
    # protected roots are watched too: the watch lists name only the places watched for copies alone
    watch_added = _new(set(after.watch_roots) - set(after.protected_roots), set(before.watch_roots))
    watch_removed = _new(set(before.watch_roots) - set(before.protected_roots), set(after.watch_roots))
    parts = [f"{label} {', '.join(display_path(i) for i in items)}" for label, items in (
        ("users covered:", added), ("users no longer covered:", removed),
        ("protected roots added:", roots_added), ("protected roots removed:", roots_removed),
        ("watched roots added:", watch_added), ("watched roots removed:", watch_removed)) if items]
    if not parts:
        return None
    why = {display_path(n.name): display_path(n.detail) for n in after.not_covered if n.name in removed}
    return Event(Action.SCOPE_CHANGED, Category.HOST, "scope changed: " + "; ".join(parts),
                 severity=2 if removed or roots_removed else 0, time=at,
                 details={"users_added": [display_path(u) for u in added],
                          "users_removed": [display_path(u) for u in removed],
                          "why_removed": why,
                          "protected_roots_added": [display_path(r) for r in roots_added],
                          "protected_roots_removed": [display_path(r) for r in roots_removed],
                          "watch_roots_added": [display_path(r) for r in watch_added],
                          "watch_roots_removed": [display_path(r) for r in watch_removed],
                          "users_covered": [display_path(u.name) for u in after.users]})


def _new(items: set[str], than: set[str]) -> list[str]:
    return sorted(items - than)


def evidence_written(touch: EvidenceTouch, at: datetime) -> Event:
    """A process other than the agent opened its evidence for writing (rule evidence-tampered)."""
    who = touch.process
    name = f"{who.name or '?'}[{who.pid}]" + (f" ({who.user})" if who.user else "")
    return Event(Action.EVIDENCE_WRITTEN, Category.INTRUSION_DETECTION,
                 f"{name} {touch.how} the agent's {touch.what}: {display_path(touch.path)}",
                 file=FileInfo(display_path(touch.path)), process=who, severity=9, time=at,
                 details={"evidence": touch.what, "how": touch.how})
