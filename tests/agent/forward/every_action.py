"""One record of every kind the agent emits, made by the agent's own constructors where they are plain
functions (activity_events, the access grant book, the audit summary, the replay decoder), and every
built-in rule's alert as the real engine raises it from the rule's fixture events.

The records that classes deep in the running agent make (the service's start and stop, the file pipeline's
inventory and scan records, the evidence recorder's heartbeats and checkpoints, the forwarder's health and
drops, a posture finding, a review) are written here with the keys their producers write; the end-to-end
test of tests/agent/forward/test_schemas.py checks most of them again as a real agent writes them (start,
scan, discovered, created, modified, moved, deleted, heartbeat, checkpoint, stop). `MADE_HERE` names them;
a new Action without a record here fails `test_every_action_has_a_record`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from tests.agent.detect.fixture_cases import BUILTIN, cases, run_case
from weightwarden.agent import __version__
from weightwarden.agent.access import grants
from weightwarden.agent.access.decide import Decision, ModelRef
from weightwarden.agent.access.gate import Verdict
from weightwarden.agent.audit.record import COUNTS, summary_event
from weightwarden.agent.audit.report import FLAGS
from weightwarden.agent.detect.replay import event_from
from weightwarden.agent.events import (
    Action,
    Alert,
    Category,
    Event,
    FileInfo,
    ModelFile,
    ProcessInfo,
    Record,
)
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.pipeline import activity_events, serving_events
from weightwarden.agent.scope.scope import Scope, UserScope
from weightwarden.agent.scope.stores import Place
from weightwarden.agent.sensors.access import AccessFailOpen, AccessObservation
from weightwarden.agent.sensors.evidence_guard import EvidenceTouch
from weightwarden.agent.sensors.files import SensorHealth
from weightwarden.agent.sensors.mounts import Mount, MountObservation
from weightwarden.agent.sensors.network import ConnectionObservation
from weightwarden.agent.serving.observations import PeerTraffic, ServedModel, Server, ServingStarted, ServingStopped

AT = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
MODEL = ModelFile(path="/home/ana/models/llama/model.safetensors", format="safetensors", size=4096, model="llama",
                  sha256="ab" * 32, quick_fingerprint="q" * 32, device=2049, inode=77)
PROCESS = ProcessInfo(pid=4242, name="python3", executable="/usr/bin/python3.11", user="ana", uid=1000, ppid=1,
                      command_line="python3 train.py")

# Actions whose records are written here as their producers write them (see the module docstring).
MADE_HERE = {Action.MODEL_DISCOVERED, Action.MODEL_CREATED, Action.MODEL_MODIFIED, Action.MODEL_MOVED,
             Action.MODEL_DELETED, Action.SCAN_FINISHED, Action.DISCOVERY_FINISHED, Action.SCAN_ERROR,
             Action.AGENT_STARTED, Action.AGENT_STOPPED, Action.CHAIN_CHECKPOINT, Action.HEARTBEAT,
             Action.EVENTS_DROPPED, Action.FORWARD_HEALTH, Action.POSTURE_FINDING, Action.ALERT_REVIEWED}


def alerts(workdir: Path) -> list[Alert]:
    """Every built-in rule's alerts from its first alerting fixture case, through the real engine."""
    raised: list[Alert] = []
    for rule in BUILTIN.rules:
        for name, case in cases():
            if any(a.get("rule") == rule.id for a in case.get("alerts", [])):
                folder = workdir / name.replace(":", "_").replace(" ", "_").replace("/", "_")
                folder.mkdir(parents=True, exist_ok=True)
                raised += [a for a in run_case(case, folder) if a.rule_id == rule.id]
                break
    return raised


def events(workdir: Path) -> list[Event]:
    inventory = Inventory([MODEL])
    out: list[Event] = []
    for kind in ("opened", "read", "written", "held"):
        obs = AccessObservation(kind, MODEL.path, 2049, 77, 4096, PROCESS, bytes_read=4096 if kind == "read" else None,
                                bytes_read_source="fd-position" if kind == "read" else None, mapped=False,
                                seconds_open=0.5)
        out.append(activity_events.access_event(obs, inventory, AT))
    for allowed, enforced, glass in ((False, True, False), (False, False, False), (True, True, True)):
        verdict = Verdict(Decision(allowed, enforced, "training-only", "not an allowed program", break_glass=glass),
                          "read", True, None, ModelRef(MODEL.path, "llama"))
        obs = AccessObservation("denied" if not allowed and enforced else "opened", MODEL.path, 2049, 77, 4096,
                                PROCESS, verdict=verdict)
        made = activity_events.verdict_event(obs, inventory, AT)
        assert made is not None
        out.append(made)
    out.append(activity_events.fail_open_event(AccessFailOpen(3, "deadline"), AT))
    for phase in ("opened", "progress", "closed"):
        out.append(activity_events.connection_event(ConnectionObservation(
            phase, PROCESS, "10.0.0.2", 40000, "203.0.113.7" if phase != "closed" else "2001:db8::7", 443, None,
            None if phase == "opened" else 1 << 20, None if phase == "opened" else 4096, "tcp_info",
            seconds=1.5), AT))
    out.append(activity_events.connection_event(ConnectionObservation(
        "closed", None, "10.0.0.2", 40001, "10.0.0.9", 53, None, 120, 300, "netns-egress-bound", protocol="udp"), AT))
    for phase in ("added", "removed"):
        out.append(activity_events.mount_event(MountObservation(phase, Mount(
            "/media/usb", "vfat", "/dev/sdb1", "rw,nosuid", "removable")), AT))
    out.append(activity_events.health_event(SensorHealth("access", "degraded", "fanotify unavailable"), AT))
    before = _scope(("ana",))
    after = _scope(("ana", "bob"))
    changed = activity_events.scope_change_event(before, after, AT)
    assert changed is not None
    out.append(changed)
    out.append(activity_events.evidence_written(
        EvidenceTouch("/var/lib/weightwarden/weightwarden.db", "database", "opened for writing", PROCESS), AT))
    out.append(summary_event({**{key: 1 for key in COUNTS}, "flags": {flag: 1 for flag in FLAGS}}))
    out += _access_records(workdir)
    out += _serving()
    out += _made_here()
    # the replay decoder's events (what the rule fixtures feed the engine) are records too
    out.append(_event(event_from({"action": "model-read", "path": MODEL.path, "size": 4096, "process":
                                  {"pid": 7, "name": "cp", "executable": "/usr/bin/cp"}})))
    return out


def _serving() -> list[Event]:
    """A model server's records, by the pipeline's builders (agent/pipeline/serving_events.py)."""
    server = Server(4026531840, "0.0.0.0", 11434, "all-interfaces", PROCESS.pid, PROCESS,
                    (ServedModel("llama", MODEL.path, True),), "ollama", False, "GET /api/tags answered 200")
    return [serving_events.served_event(ServingStarted(server), AT),
            serving_events.traffic_event(PeerTraffic(server, "203.0.113.9", 1500, 2, 150000, 3000000), AT),
            serving_events.stopped_event(ServingStopped(server), AT)]


def _event(item: object) -> Event:
    assert isinstance(item, Event)
    return item


def _scope(users: tuple[str, ...]) -> Scope:
    people = tuple(UserScope(name, 1000 + i, f"/home/{name}", (Place(f"/home/{name}/models", "models"),), (), ())
                   for i, name in enumerate(users))
    return Scope("system", people, (), (), (), ())


def _access_records(workdir: Path) -> list[Event]:
    """Requests, refusals, grants, revocations, expiries and break-glass, as the grant book records them."""
    data = str(workdir / "access-data")
    os.makedirs(data, exist_ok=True)
    grants.prepare_requests_dir(data)
    book = grants.GrantBook(data)
    first = grants.request(data, "llama", "/usr/bin/python3.11", "fine-tune run")
    grants.request(data, "mistral", None, "evaluation")
    refused = grants.take_pending(data)  # the requests, recorded before one of them is refused
    grants.refuse(data, first.id, "use the shared copy", 0)
    granted = book.grant("root", "llama", "/usr/bin/python3.11", 60, "approved")
    book.revoke(granted.id, revoked_by=0)
    book.grant("root", "mistral", None, 1, "short", now=0.0)
    book.sweep(now=10.0)
    grants.break_glass(data, 60, "incident response")
    return refused + grants.take_pending(data)


def _made_here() -> list[Event]:
    info = MODEL.file_info()
    return [
        Event(Action.MODEL_DISCOVERED, Category.FILE, f"model discovered: {MODEL.shown} (safetensors)", file=info,
              model="llama", details={}, time=AT),
        Event(Action.MODEL_CREATED, Category.FILE, f"model created: {MODEL.shown} (safetensors)", file=info,
              model="llama", details={"copy_of": "/models/llama.safetensors", "confirmed_by_sha256": True}, time=AT),
        Event(Action.MODEL_MODIFIED, Category.FILE, f"model modified: {MODEL.shown} (safetensors)", file=info,
              model="llama", details={}, time=AT),
        Event(Action.MODEL_MOVED, Category.FILE, "model file moved: /a/m.safetensors -> /b/m.safetensors",
              file=FileInfo(path="/b/m.safetensors", size=4096), previous_path="/a/m.safetensors", model="llama",
              details={"destination_kind": "local"}, time=AT),
        Event(Action.MODEL_DELETED, Category.FILE, f"model file deleted: {MODEL.shown}", file=info, model="llama",
              time=AT),
        Event(Action.SCAN_FINISHED, Category.FILE, "scanned 10 files, 1 model files under 1 roots",
              details={"roots": ["/home/ana/models"], "files": 10, "models": 1, "seconds": 0.25,
                       "reason": "initial"}, time=AT),
        Event(Action.DISCOVERY_FINISHED, Category.FILE, "discovery pass 1: 10 files, 1 model files under 1 roots",
              details={"pass": 1, "roots": ["/home"], "files": 10, "models": 1, "bytes_read": 4096,
                       "cache_hits": 0, "issues": 0, "complete": True, "seconds": 1.5, "not_covered": []}, time=AT),
        Event(Action.SCAN_ERROR, Category.FILE, "/home/ana/models/x.gguf: permission denied",
              file=FileInfo(path="/home/ana/models/x.gguf"), severity=1, details={"reason": "permission denied"},
              time=AT),
        Event(Action.AGENT_STARTED, Category.HOST, f"Weightwarden agent {__version__} started in system mode",
              details={"mode": "system", "coverage": "full", "version": __version__, "host": "ws1", "pid": 99,
                       "protected_roots": ["/home/ana/models"], "watch_roots": ["/tmp"],
                       "users_covered": ["ana"], "known_model_files": 1}, time=AT),
        Event(Action.AGENT_STOPPED, Category.HOST, "Weightwarden agent stopped",
              details={"known_model_files": 1, "handler_errors": 0,
                       "checkpoint": {"signed_sequence": 9, "signed_hash": "c" * 64, "key_id": "k1",
                                      "algorithm": "ed25519", "reason": "shutdown", "signature": "s"}}, time=AT),
        Event(Action.CHAIN_CHECKPOINT, Category.HOST, "chain checkpoint (interval): record 9 signed by agent key k1",
              details={"signed_sequence": 9, "signed_hash": "c" * 64, "key_id": "k1", "algorithm": "ed25519",
                       "reason": "interval", "signature": "s"}, time=AT),
        Event(Action.HEARTBEAT, Category.HOST, "heartbeat: full coverage, backlog 0",
              details={"mode": "system", "coverage": "full", "gaps": [], "sensors": {"files": "running"},
                       "handler_errors": 0, "writer_failures": 0, "version": __version__, "backlog": {"siem": 0},
                       "last_sequence": 9, "uptime_seconds": 60.0, "forward_errors": {}}, time=AT),
        Event(Action.EVENTS_DROPPED, Category.HOST, "5 events dropped for siem",
              severity=6, details={"destination": "siem", "dropped": 5, "first_sequence": 1, "last_sequence": 5,
                                   "bytes_dropped": 900, "backlog_max_mb": 1.0}, time=AT),
        Event(Action.FORWARD_HEALTH, Category.HOST, "forwarding to siem needs attention: 401",
              severity=5, details={"destination": "siem", "status": "failing", "error": "401"}, time=AT),
        Event(Action.POSTURE_FINDING, Category.HOST, "model file readable by every user", file=info, model="llama",
              severity=4, details={"finding": "world-readable"}, time=AT),
        Event(Action.ALERT_REVIEWED, Category.INTRUSION_DETECTION, "alert 0193: resolved by ana",
              details={"alert_id": "0193", "action": "resolved", "user": "ana", "note": "expected"}, time=AT),
        # sealing (agent/pipeline/inventory_upkeep.py, agent/seal/unseal_service.py: the keys they write)
        Event(Action.MODEL_SEALED, Category.FILE, f"model sealed: {MODEL.shown} (sealed)",
              file=FileInfo(path=MODEL.path, size=4400, format="sealed", sha256="e" * 64), model="llama",
              details={"sealed_format": "safetensors"}, process=PROCESS, time=AT),
        *(Event(action, Category.FILE, message, file=FileInfo(path=MODEL.path, size=4096, sha256="a" * 64,
                                                              format="safetensors"), model="llama", process=PROCESS,
                details={"unseal": {
                    "caller": {"pid": 4242, "uid": 1000, "user": "ana", "executable": "/usr/bin/python3.11",
                               "executable_sha256": "b" * 64},
                    "decision": {"policy": "llama-weights", "reason": reason, "access": "read-write",
                                 "allowed": allowed, "enforced": True, "grant": None, "break_glass": False},
                    "sealed": {"format": "safetensors", "sha256": "a" * 64, "size": 4096}}}, time=AT)
          for action, message, reason, allowed in (
              (Action.MODEL_UNSEALED, f"unsealed {MODEL.shown} for ana", "allow[0] of llama-weights", True),
              (Action.UNSEAL_REFUSED, f"unseal of {MODEL.shown} refused for ana", "no allow entry matches",
               False))),
    ]


def every_record(workdir: Path) -> list[Record]:
    return [*events(workdir), *alerts(workdir)]
