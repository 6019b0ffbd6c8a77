"""The detection engine: every recorded Event passes through it; rules and correlations make Alerts.

Pure apart from the injected `exe_sha256` lookup: (event, state) -> alerts, with time taken from the
events, so a replay of recorded events gives the same alerts (tests/agent/detect/fixtures). State kept:

- per process tree (its session): protected bytes read per file, bytes sent per connection, recent model
  reads (bulk collection), the progress of each sequence rule;
- per incident (rule, tree, model within the rule's window): one alert, its evidence timeline and count.
  Repeats are folded into the incident; an update is only recorded when the alert grows (severity or, for
  egress, each quarter of the model sent), as a new record naming the incident it updates.
"""

from __future__ import annotations

import fnmatch
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.detect.fields import event_fields, tree_key
from weightwarden.agent.detect.rules import Allowlist, Rule, RuleSet
from weightwarden.agent.detect.transfer import STAGING_TOOLS, TRANSFER_TOOLS, parse_staging, parse_transfer
from weightwarden.agent.events import Action, Alert, Destination, Event, ProcessInfo, format_time

READ_ACTIONS = (Action.MODEL_READ, Action.MODEL_HELD)
ACCESS_ACTIONS = (Action.MODEL_OPENED, Action.MODEL_READ, Action.MODEL_HELD)
TIMELINE_LIMIT = 50
TREE_IDLE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class DetectSettings:
    """The [detect] config section, as the engine needs it."""

    allow: Allowlist = field(default_factory=Allowlist)  # applies to every rule
    egress_ratio: float | None = None  # overrides the egress rule's ratio
    bulk_models: int | None = None
    bulk_window: float | None = None
    disabled: tuple[str, ...] = ()


@dataclass
class _Incident:
    first: float
    last: float
    count: int = 1
    updates: int = 0
    progress_step: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    alert: Alert | None = None


@dataclass
class _Tree:
    last: float = 0.0
    read: dict[str, int] = field(default_factory=dict)  # protected path -> bytes read (max seen)
    sizes: dict[str, int] = field(default_factory=dict)  # protected path -> file size
    models: dict[str, str] = field(default_factory=dict)  # protected path -> model
    reads: deque[tuple[float, str]] = field(default_factory=deque)  # (time, model) for bulk collection
    sent: dict[str, tuple[str, int]] = field(default_factory=dict)  # connection -> (address, bytes sent)
    # sequence rule -> (index of the next step, start time, the steps matched so far)
    steps: dict[str, tuple[int, float, list[dict[str, Any]]]] = field(default_factory=dict)


class DetectionEngine:
    def __init__(self, rules: RuleSet, settings: DetectSettings | None = None, *,
                 canaries: Callable[[], Iterable[str]] | None = None,
                 exe_sha256: Callable[[str], str | None] | None = None) -> None:
        self.settings = settings or DetectSettings()
        self.rules = tuple(r for r in rules.rules if r.id not in self.settings.disabled)
        self._event_rules = tuple(r for r in self.rules if r.correlate != "copy-severity")
        self._copy_rule = next((r for r in self.rules if r.correlate == "copy-severity"), None)
        self._canaries = canaries or (lambda: ())
        self._exe_sha256 = exe_sha256
        self._trees: dict[str, _Tree] = {}
        self._incidents: dict[tuple[str, str, str], _Incident] = {}
        self.events = 0
        self.alerts = 0

    # ------------------------------------------------------------------ entry points

    def process(self, event: Event) -> list[Alert]:
        """Alerts (new incidents and incident updates) that this event causes."""
        if event.action not in ACCESS_ACTIONS and event.action not in (Action.MODEL_WRITTEN,
                                                                        Action.NETWORK_CONNECTION):
            return []  # inventory, health and evidence records carry no behaviour to judge
        self.events += 1
        now = event.time.timestamp()
        fields = event_fields(event)
        tree_key = str(fields.get("process.tree") or "none")
        tree = self._trees.setdefault(tree_key, _Tree())
        tree.last = now
        self._enrich(event, fields)
        self._account(event, tree, now)
        found: list[Alert] = []
        for rule in self._event_rules:
            alert = self._evaluate(rule, event, fields, tree, tree_key, now)
            if alert is not None:
                found.append(alert)
        if self.events % 1024 == 0:
            self._prune(now)
        self.alerts += len(found)
        return found

    def adjust_copy(self, alert: Alert) -> Alert:
        """The model-copy alert with its severity from the copy rule's severity_by_destination."""
        rule = self._copy_rule
        if rule is None or alert.destination is None:
            return alert
        severity = rule.severity_by_destination.get(alert.destination.kind)
        if severity is None:
            severity = rule.severity_by_destination.get("elsewhere", alert.severity)
        if severity == alert.severity:
            return alert
        return _replace_alert(alert, severity=severity,
                              evidence={**alert.evidence, "severity_by": f"destination {alert.destination.kind}",
                                        "techniques": list(rule.techniques)})

    def tree_read_models(self, process: ProcessInfo | None) -> bool:
        """Whether the process tree of `process` has read protected model bytes (and is still tracked)."""
        key = tree_key(process)
        tree = self._trees.get(key) if key is not None else None
        return tree is not None and bool(tree.read)

    # ------------------------------------------------------------------ state

    def _enrich(self, event: Event, fields: dict[str, Any]) -> None:
        path = event.file.path if event.file else None
        canaries = self._canaries()
        fields["canary"] = bool(path) and path in (canaries if isinstance(canaries, set | frozenset) else set(canaries))
        name = (event.process.name or "") if event.process else ""
        command_line = event.process.command_line if event.process else None
        exe_name = os.path.basename(event.process.executable or "") if event.process else ""
        if name in TRANSFER_TOOLS or exe_name in TRANSFER_TOOLS or name.startswith("python"):
            transfer = parse_transfer(command_line)
            if transfer is not None:
                fields.update({"transfer.tool": transfer.tool, "transfer.destination": transfer.destination,
                               "transfer.kind": transfer.kind, "transfer.host": transfer.host,
                               "transfer.sources": list(transfer.sources)})
        if name in STAGING_TOOLS or exe_name in STAGING_TOOLS:
            staging = parse_staging(command_line)
            if staging is not None:
                fields.update({"staging.tool": staging.tool, "staging.operation": staging.operation,
                               "staging.output": staging.output, "staging.inputs": list(staging.inputs)})

    def _account(self, event: Event, tree: _Tree, now: float) -> None:
        if event.action in ACCESS_ACTIONS and event.file is not None and event.model:
            path = event.file.path
            if event.file.size:
                tree.sizes[path] = event.file.size
            tree.models[path] = event.model
            if event.action in READ_ACTIONS:
                got = event.process.bytes_read if event.process else None
                if got is None:
                    got = event.file.size or 0
                tree.read[path] = max(tree.read.get(path, 0), got)
                tree.reads.append((now, event.model))
        elif event.action == Action.NETWORK_CONNECTION:
            sent = event.details.get("bytes_sent")
            if isinstance(sent, int) and sent > 0:
                dest = event.details.get("destination") or {}
                source = event.details.get("source") or {}
                key = f"{dest.get('address')}:{dest.get('port')}/{source.get('port')}"
                tree.sent[key] = (str(dest.get("address")), max(tree.sent.get(key, ("", 0))[1], sent))

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._trees.items() if now - t.last > TREE_IDLE_SECONDS]:
            del self._trees[key]
        for stale in [k for k, i in self._incidents.items() if now - i.last > TREE_IDLE_SECONDS]:
            del self._incidents[stale]

    # ------------------------------------------------------------------ rules

    def _evaluate(self, rule: Rule, event: Event, fields: dict[str, Any], tree: _Tree, tree_key: str,
                  now: float) -> Alert | None:
        extra: dict[str, Any] = {}
        if rule.sequence is not None:
            matched = self._advance(rule, fields, tree, now)
            if matched is None:
                return None
            extra["sequence"] = matched
        elif not rule.condition(fields):
            return None
        allowed = self._allowed(rule.allow.merged(self.settings.allow), fields)
        if allowed:
            return None
        severity = rule.severity
        destination: Destination | None = None
        progress: float | None = None
        if rule.correlate == "egress-budget":
            verdict = self._egress(rule, tree, rule.allow.merged(self.settings.allow))
            if verdict is None:
                return None
            extra.update(verdict)
            progress = float(verdict["progress"])
            dest = event.details.get("destination") or {}
            destination = Destination("network", dest.get("address"), dest.get("port"))
        elif rule.correlate == "bulk-collection":
            verdict = self._bulk(rule, tree, now)
            if verdict is None:
                return None
            extra.update(verdict)
        elif rule.correlate == "transfer-tool":
            if not fields.get("transfer.destination"):
                return None
            extra["transfer"] = {k[9:]: v for k, v in fields.items() if k.startswith("transfer.")}
            destination = Destination(str(fields.get("transfer.kind")), fields.get("transfer.host"),
                                      path=fields.get("transfer.destination"))
        elif rule.correlate == "staging":
            if "staging.operation" not in fields:
                return None
            extra["staging"] = {k[8:]: v for k, v in fields.items() if k.startswith("staging.")}
            extra["lineage"] = {"read": event.file.path if event.file else None,
                                "wrote": fields.get("staging.output")}
        if destination is None and event.action == Action.NETWORK_CONNECTION:
            dest = event.details.get("destination") or {}
            destination = Destination("network", dest.get("address"), dest.get("port"))
        model = event.model or (event.file.path if event.file else None) or _tree_model(tree)
        return self._incident(rule, event, fields, tree_key, model, now, severity, destination, extra, progress)

    def _advance(self, rule: Rule, fields: dict[str, Any], tree: _Tree, now: float) -> list[dict[str, Any]] | None:
        sequence = rule.sequence
        assert sequence is not None
        index, start, ids = tree.steps.get(rule.id, (0, now, []))
        if index and now - start > sequence.within:
            index, start, ids = 0, now, []
        if sequence.steps[0].condition(fields) and index == 0:
            start, ids = now, []
        step = sequence.steps[index]
        if not step.condition(fields):
            return None
        ids = [*ids, {"step": step.name, "action": fields["event.action"], "event_id": fields["event.id"]}]
        if index == 0:
            start = now
        if index + 1 < len(sequence.steps):
            tree.steps[rule.id] = (index + 1, start, ids)
            return None
        tree.steps.pop(rule.id, None)
        return ids

    def _allowed(self, allow: Allowlist, fields: dict[str, Any]) -> bool:
        executable = fields.get("process.executable")
        for entry in allow.processes:
            if executable and fnmatch.fnmatchcase(str(executable), entry.executable):
                if entry.sha256 is None:
                    return True
                digest = self._exe_sha256(str(executable)) if self._exe_sha256 else None
                if digest is not None and digest.lower() == entry.sha256:
                    return True
        user = fields.get("process.user")
        if user and user in allow.users:
            return True
        path = fields.get("file.path")
        if path and any(fnmatch.fnmatchcase(str(path), glob) for glob in allow.paths):
            return True
        targets = [fields.get(k) for k in ("transfer.destination", "transfer.host", "destination.address")]
        return any(t and any(fnmatch.fnmatchcase(str(t), glob) for glob in allow.destinations) for t in targets)

    def _egress(self, rule: Rule, tree: _Tree, allow: Allowlist) -> dict[str, Any] | None:
        ratio = self.settings.egress_ratio or float(rule.parameters.get("ratio", 0.5))
        read = sum(tree.read.values())
        if read < int(rule.parameters.get("min_bytes", 1)) or not tree.sent:
            return None
        # Bytes to allowlisted destinations (the organisation's own hosts) never count against the budget.
        counted = {key: sent for key, (address, sent) in tree.sent.items()
                   if not any(fnmatch.fnmatchcase(address, glob) for glob in allow.destinations)}
        sent = sum(counted.values())
        if sent < ratio * read:
            return None
        size = sum(tree.sizes.get(p, 0) for p in tree.read) or read
        return {"bytes_sent": sent, "bytes_read": read, "model_bytes": size, "ratio": ratio,
                "progress": round(min(sent / size, 1.0), 4), "connections": dict(sorted(counted.items())[:20]),
                "models": sorted(set(tree.models[p] for p in tree.read if p in tree.models))}

    def _bulk(self, rule: Rule, tree: _Tree, now: float) -> dict[str, Any] | None:
        window = self.settings.bulk_window or float(rule.parameters.get("within", 600.0))
        needed = self.settings.bulk_models or int(rule.parameters.get("distinct_models", 5))
        while tree.reads and now - tree.reads[0][0] > window:
            tree.reads.popleft()
        models = sorted({m for _, m in tree.reads})
        if len(models) < needed:
            return None
        return {"distinct_models": len(models), "models": models[:50], "window_seconds": window}

    # ------------------------------------------------------------------ incidents

    def _incident(self, rule: Rule, event: Event, fields: dict[str, Any], tree_key: str, model: str | None,
                  now: float, severity: int, destination: Destination | None, extra: dict[str, Any],
                  progress: float | None) -> Alert | None:
        # Tree-wide correlations are one incident per tree, whichever model the triggering event names.
        subject = "*" if rule.correlate in ("egress-budget", "bulk-collection") else (model or "?")
        key = (rule.id, tree_key, subject)
        entry = {"time": format_time(event.time), "action": str(event.action), "event_id": event.id,
                 "message": event.message}
        incident = self._incidents.get(key)
        if incident is not None and now - incident.last <= rule.window:
            incident.last = now
            incident.count += 1
            if len(incident.timeline) < TIMELINE_LIMIT:
                incident.timeline.append(entry)
            step = int(progress * 4) if progress is not None else 0
            first = incident.alert
            assert first is not None
            if step <= incident.progress_step and severity <= first.severity:
                return None  # a repeat: folded into the incident
            incident.progress_step = max(step, incident.progress_step)
            incident.updates += 1
            alert = self._alert(rule, event, fields, model, severity, destination, extra, incident, progress)
            incident.alert = _replace_alert(alert, evidence={**alert.evidence,
                                                             "incident": first.evidence.get("incident", first.id)})
            return incident.alert
        incident = _Incident(first=now, last=now, timeline=[entry])
        incident.progress_step = int(progress * 4) if progress is not None else 0
        alert = self._alert(rule, event, fields, model, severity, destination, extra, incident, progress)
        incident.alert = _replace_alert(alert, evidence={**alert.evidence, "incident": alert.id})
        self._incidents[key] = incident
        return incident.alert

    def _alert(self, rule: Rule, event: Event, fields: dict[str, Any], model: str | None, severity: int,
               destination: Destination | None, extra: dict[str, Any], incident: _Incident,
               progress: float | None) -> Alert:
        paths = tuple(dict.fromkeys(p for p in (event.file.path if event.file else None,
                                                fields.get("staging.output")) if isinstance(p, str)))
        message = f"{rule.title}: {event.message}"
        if progress is not None:
            message += f" ({extra['bytes_sent']} of {extra['model_bytes']} model bytes sent, {progress:.0%})"
        evidence: dict[str, Any] = {
            "description": rule.description, "techniques": list(rule.techniques), "process_tree": fields.get(
                "process.tree"), "events": incident.count, "updates": incident.updates,
            "first_seen": format_time(event.time) if incident.count == 1 else incident.timeline[0]["time"],
            "timeline": list(incident.timeline), **extra}
        if fields.get("canary"):
            evidence["canary"] = True
        return Alert(rule_id=rule.id, title=rule.title + (f": {model}" if model else ""), severity=severity,
                     message=message, paths=paths, model=event.model or model, process=event.process,
                     destination=destination, evidence=evidence,
                     event_ids=tuple(e["event_id"] for e in incident.timeline[-20:]))


def _tree_model(tree: _Tree) -> str | None:
    models = sorted(set(tree.models.values()))
    return models[0] if len(models) == 1 else None


def _replace_alert(alert: Alert, **changes: Any) -> Alert:
    values = {name: getattr(alert, name) for name in Alert.__dataclass_fields__}
    values.update(changes)
    return Alert(**values)
