"""Alerts for the app's tests and demo, as the real engine raises them from replayed activity.

Each scenario is a short replay (agent/detect/replay.py) through a fresh DetectionEngine with the built-in
rules: the rule ids, titles, messages and typed evidence are what the agent would store. Only the time
(and, where a test spreads severities, the severity) is set afterwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from weightwarden.agent.detect.copy import CopyCandidate
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.replay import event_from
from weightwarden.agent.detect.rules import load_rules
from weightwarden.agent.events import Alert

RULES = load_rules()
LEAD_SECONDS = 30  # the replayed activity ends this long before the alert's time


def produced(rule: str, events: Iterable[Mapping[str, Any]], *, when: datetime, canaries: Iterable[str] = (),
             severity: int | None = None) -> Alert:
    """The latest state of `rule`'s incident after the replay, stamped at `when`."""
    planted = frozenset(canaries)
    engine = DetectionEngine(RULES, canaries=lambda: planted)
    start = when - timedelta(seconds=LEAD_SECONDS)
    found: list[Alert] = []
    for raw in events:
        item = event_from(raw, start)
        if isinstance(item, CopyCandidate):
            found.extend(a for a in [engine.copy(item)] if a is not None)
        else:
            found.extend(engine.process(item))
    matching = [a for a in found if a.rule_id == rule]
    assert matching, f"the replay raised no {rule} alert: {[a.rule_id for a in found]}"
    alert = dataclasses.replace(matching[-1], time=when)
    return alert if severity is None else dataclasses.replace(alert, severity=severity)


def process(name: str, pid: int, cmd: str, user: str = "ana") -> dict[str, Any]:
    return {"pid": pid, "name": name, "cmd": cmd, "user": user, "session": pid, "exe": f"/usr/bin/{name}"}


def transfer(model: str, path: str, who: dict[str, Any], *, when: datetime, severity: int | None = None) -> Alert:
    """A transfer tool (rsync, scp, aws s3 cp, rclone...) reads a protected model it was told to send."""
    return produced("transfer-tool-sent-model", [
        {"at": 0, "action": "model-read", "path": path, "model": model, "size": 5 << 30, "process": who}],
        when=when, severity=severity)


def canary(model: str, path: str, who: dict[str, Any], *, when: datetime, severity: int | None = None) -> Alert:
    """Something reads a planted decoy."""
    return produced("canary-model-accessed", [
        {"at": 0, "action": "model-read", "path": path, "model": model, "size": 5 << 30, "process": who}],
        when=when, canaries=[path], severity=severity)


def copy(model: str, source: str, path: str, kind: str, who: dict[str, Any] | None, *, when: datetime,
         severity: int | None = None, sha256: str | None = None) -> Alert:
    """A new file with a protected model's bytes lands in a place of `kind` (removable, temporary, ...)."""
    entry: dict[str, Any] = {"at": 0, "copy": kind, "path": path, "model": model, "source": source,
                             "size": 5 << 30, "sha256": sha256}
    if who is not None:
        entry["process"] = who
    return produced("model-copy", [entry], when=when, severity=severity)


def egress(model: str, path: str, who: dict[str, Any], address: str, share: float, *, when: datetime,
           severity: int | None = None) -> Alert:
    """A process tree reads a protected model, then sends `share` of its bytes to `address`:443."""
    size = 5 << 30
    return produced("model-egress-budget", [
        {"at": 0, "action": "model-read", "path": path, "model": model, "size": size, "process": who},
        {"at": 20, "action": "network-connection", "address": address, "port": 443,
         "bytes_sent": int(size * share), "process": who}], when=when, severity=severity)


def staging(model: str, path: str, archive: str, who_pid: int, *, when: datetime,
            severity: int | None = None) -> Alert:
    """tar packs a protected model into an archive."""
    who = process("tar", who_pid, f"tar czf {archive} {path}")
    return produced("model-staged-in-archive", [
        {"at": 0, "action": "model-read", "path": path, "model": model, "size": 5 << 30, "process": who}],
        when=when, severity=severity)


def bulk(models: list[str], who: dict[str, Any], *, when: datetime, severity: int | None = None) -> Alert:
    """One shell reads many models, one after the other."""
    return produced("bulk-model-collection", [
        {"at": index * 10, "action": "model-read", "path": f"/home/ana/models/{m}/model.safetensors", "model": m,
         "size": 1 << 30, "process": who} for index, m in enumerate(models)], when=when, severity=severity)
