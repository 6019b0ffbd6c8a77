"""The detection engine: every recorded Event passes through it; rules and correlations make Alerts.

Pure apart from the injected `exe_sha256` lookup: (event, state) -> alerts, with time taken from the
events, so a replay of recorded events gives the same alerts (tests/agent/detect/fixtures). State kept:

- per process tree (detect/state.py): protected bytes read per file, bytes sent per connection, recent
  model reads, the progress of each sequence rule;
- per incident (rule, tree, model within the rule's window): one alert, its evidence timeline and count.
  Repeats are folded into the incident; an update is only recorded when the alert grows (severity or, for
  egress, each quarter of the model sent), as a new record naming the incident it updates.

Correlations (egress budget, bulk collection, transfer tool, staging, copy) are registered kinds
(detect/correlations); each rule's parameters are resolved once, here: a [detect] setting overrides a
rule's own value only when it is set. New files matching a protected model come in through `copy`.

Not thread-safe: one thread (the agent's dispatcher) calls `process` and `copy`. `reading_trees` is the
exception, read by the network sensor's thread: it is replaced, never changed in place.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from weightwarden.agent.alert_evidence import AlertEvidence, RuleMatchEvidence, SequenceStep, TimelineEntry
from weightwarden.agent.detect.copy import CopyCandidate, copy_alert
from weightwarden.agent.detect.correlations import Correlation, Situation, Verdict, correlation, settings_keys
from weightwarden.agent.detect.correlations.copy import Copy
from weightwarden.agent.detect.correlations.lineage import Lineage as LineageKind
from weightwarden.agent.detect.fields import event_fields, process_fields, tree_key
from weightwarden.agent.detect.lineage import LineageLedger
from weightwarden.agent.detect.rules import Allowlist, Rule, RuleSet
from weightwarden.agent.detect.serving_volume import DAY, PeerVolume
from weightwarden.agent.detect.state import TreeState
from weightwarden.agent.detect.tools import identify_tool
from weightwarden.agent.detect.transfer import (
    STAGING_TOOLS,
    TRANSFER_TOOLS,
    Staging,
    Transfer,
    staging_of,
    transfer_of,
)
from weightwarden.agent.events import Action, Alert, Destination, Event, FileInfo, ProcessInfo, format_time, new_id

READ_ACTIONS = (Action.MODEL_READ, Action.MODEL_HELD)
ACCESS_ACTIONS = (Action.MODEL_OPENED, Action.MODEL_READ, Action.MODEL_HELD)
# What the event rules look at: accesses and writes, connections, evidence touched, the access policy's answers.
JUDGED_ACTIONS = frozenset({*ACCESS_ACTIONS, Action.MODEL_WRITTEN, Action.NETWORK_CONNECTION,
                            Action.EVIDENCE_WRITTEN, Action.ACCESS_DENIED, Action.ACCESS_WOULD_DENY,
                            Action.ACCESS_BREAK_GLASS_OPEN, Action.ACCESS_FAIL_OPEN,
                            Action.UNSEAL_REFUSED,  # docs/sealing.md: a refused unseal
                            Action.MODEL_SERVED, Action.SERVING_TRAFFIC})  # docs/serving.md
TIMELINE_LIMIT = 50
TREE_IDLE_SECONDS = 3600.0


@runtime_checkable
class CanaryLookup(Protocol):
    """Whether a file is a planted canary or a copy of one (agent/canary.py CanaryIndex: by device and
    inode, then path, then content)."""

    def matches(self, file: FileInfo | None) -> bool: ...


# What the engine's `canaries` callable returns: a CanaryLookup, or plain canary paths (replayed fixtures).
CanarySource = Callable[[], "CanaryLookup | Iterable[str]"]


@dataclass(frozen=True, slots=True)
class DetectSettings:
    """The [detect] config section, as the engine needs it (detect/policy.py settings_from_config)."""

    allow: Allowlist = field(default_factory=Allowlist)  # applies to every rule
    # Each overrides a correlation parameter of every rule (correlations/*.py Parameter.setting) when set;
    # None leaves each rule's own value (or the parameter's default) in effect.
    egress_ratio: float | None = None
    bulk_models: int | None = None
    bulk_window_seconds: float | None = None
    lineage_ratio: float | None = None
    serving_bytes_per_hour: int | None = None
    serving_bytes_per_day: int | None = None
    serving_burst_connections: int | None = None
    disabled: tuple[str, ...] = ()

    def overrides(self) -> dict[str, float | None]:
        """The [detect] setting of each overridable parameter, by setting name (None: unset)."""
        return {key: getattr(self, key) for key in settings_keys()}


@dataclass
class _Incident:
    first: float
    last: float
    count: int = 1
    updates: int = 0
    progress_step: int = 0
    timeline: list[TimelineEntry] = field(default_factory=list)
    severity: int = 0  # of its latest alert
    first_id: str = ""  # its first alert's id, which every update names


@dataclass(frozen=True, slots=True)
class _Armed:
    """A loaded rule with its correlation kind and that kind's resolved parameters."""

    rule: Rule
    correlation: Correlation | None
    values: Mapping[str, float]
    allow: Allowlist  # the rule's allowlist merged with [detect]'s


class DetectionEngine:
    def __init__(self, rules: RuleSet, settings: DetectSettings | None = None, *,
                 canaries: CanarySource | None = None,
                 exe_sha256: Callable[[str], str | None] | None = None,
                 tool_hashes: Callable[[], Mapping[str, str]] | None = None) -> None:
        self.settings = settings or DetectSettings()
        self.rules = tuple(r for r in rules.rules if r.id not in self.settings.disabled)
        overrides = self.settings.overrides()
        armed = []
        for rule in self.rules:
            kind = correlation(rule.correlate)
            values = kind.resolve(rule.parameters, overrides) if kind is not None else {}
            armed.append(_Armed(rule, kind, values, rule.allow.merged(self.settings.allow)))
        self._event_rules = tuple(a for a in armed if a.correlation is None or a.correlation.on_events)
        # The copy rule is fed new files through copy(), not events; None when it is disabled or absent.
        copy = next((a for a in armed if isinstance(a.correlation, Copy)), None)
        self.copy_rule = copy.rule if copy else None
        self._copy_allow = copy.allow if copy else Allowlist()
        # The lineage rule is fed the agent's flow accounting (detect/lineage.py), not events. Its allowlists
        # exempt what allowlisted processes write and send (matched here, as for every rule: `_allowed`).
        lineage = next((a for a in armed if isinstance(a.correlation, LineageKind)), None)
        lineage_allow = lineage.allow if lineage else Allowlist()
        self.lineage = LineageLedger(lineage.rule if lineage else None, lineage.values if lineage else {},
                                     lineage_allow.destinations,
                                     exempt=lambda process: self._allowed(lineage_allow, process_fields(process)))
        # How long model reads are kept per tree: as long as the longest window a correlation needs.
        self._read_history = max((a.correlation.history(a.values) for a in armed if a.correlation), default=0.0)
        self._canaries = canaries or (lambda: ())
        self._exe_sha256 = exe_sha256
        self._tool_hashes = tool_hashes or (lambda: {})  # SHA-256 -> tool name (detect/tools.py)
        self._trees: dict[str, TreeState] = {}
        self._incidents: dict[tuple[str, str, str], _Incident] = {}
        # Trees that read protected bytes: replaced (never changed in place) so another thread may read it.
        self.reading_trees: frozenset[str] = frozenset()
        self.events = 0
        self.alerts = 0

    # ------------------------------------------------------------------ entry points

    def process(self, event: Event) -> list[Alert]:
        """Alerts (new incidents and incident updates) that this event causes."""
        if event.action not in JUDGED_ACTIONS:
            return []  # inventory, health and chain records carry no behaviour to judge
        self.events += 1
        now = event.time.timestamp()
        fields = event_fields(event)
        key = str(fields.get("process.tree") or "none")
        tree = self._trees.setdefault(key, TreeState())
        tree.last = now
        transfer, staging = self._enrich(event, fields)
        self._account(event, tree, key, now)
        found: list[Alert] = []
        for armed in self._event_rules:
            alert = self._evaluate(armed, event, fields, tree, key, now, transfer, staging)
            if alert is not None:
                found.append(alert)
        if self.events % 1024 == 0:
            self._prune(now)
        self.alerts += len(found)
        return found

    def copy(self, candidate: CopyCandidate) -> Alert | None:
        """The model-copy alert for a new file matching a protected model; None when nothing matched, the
        copy rule is disabled or the writer is allowlisted. Its severity comes from the rule's
        severity_by_destination."""
        if self.copy_rule is None:
            return None
        if candidate.process is not None and self._allowed(self._copy_allow, process_fields(candidate.process)):
            return None  # an allowlisted program (its real program by path and hash, or its user) copied it
        alert = copy_alert(candidate, self.copy_rule)
        if alert is not None:
            self.alerts += 1
        return alert

    def tree_read_models(self, process: ProcessInfo | None) -> bool:
        """Whether the process tree of `process` has read protected model bytes (and is still tracked).

        Lock-free: one lookup in `reading_trees`, safe from any thread."""
        key = tree_key(process)
        return key is not None and key in self.reading_trees

    # ------------------------------------------------------------------ state

    def _enrich(self, event: Event, fields: dict[str, Any]) -> tuple[Transfer | None, Staging | None]:
        path = event.file.path if event.file else None
        canaries = self._canaries()
        if isinstance(canaries, CanaryLookup):
            fields["canary"] = canaries.matches(event.file)
        else:
            fields["canary"] = bool(path) and path in (canaries if isinstance(canaries, set | frozenset)
                                                       else set(canaries))
        # The tool by what the process runs (its program's hash, script or file), never its command name.
        tool = identify_tool(event.process, self._tool_hashes()) if event.process else None
        transfer = staging = None
        if tool is not None:
            fields.update({"process.tool": tool.name, "process.tool.identified_by": tool.identified_by})
        if tool is not None and tool.name in TRANSFER_TOOLS:
            transfer = transfer_of(tool.name, tool.args)
            if transfer is not None:
                fields.update({"transfer.tool": transfer.tool, "transfer.destination": transfer.destination,
                               "transfer.kind": transfer.kind, "transfer.host": transfer.host,
                               "transfer.sources": list(transfer.sources)})
        if tool is not None and tool.name in STAGING_TOOLS:
            staging = staging_of(tool.name, tool.args)
            if staging is not None:
                fields.update({"staging.tool": staging.tool, "staging.operation": staging.operation,
                               "staging.output": staging.output, "staging.inputs": list(staging.inputs)})
        return transfer, staging

    def _account(self, event: Event, tree: TreeState, key: str, now: float) -> None:
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
                while tree.reads and now - tree.reads[0][0] > self._read_history:
                    tree.reads.popleft()
                if key not in self.reading_trees:
                    self.reading_trees = self.reading_trees | {key}
        elif event.action == Action.NETWORK_CONNECTION:
            sent = event.details.get("bytes_sent")
            if isinstance(sent, int) and sent > 0:
                dest = event.details.get("destination") or {}
                source = event.details.get("source") or {}
                connection = f"{dest.get('address')}:{dest.get('port')}/{source.get('port')}"
                tree.sent[connection] = (str(dest.get("address")), max(tree.sent.get(connection, ("", 0))[1], sent))
        elif event.action == Action.SERVING_TRAFFIC:
            server, peer = event.details.get("server") or {}, event.details.get("peer") or {}
            volume = tree.serving.setdefault(f"{server.get('key')}>{peer.get('address')}", PeerVolume())
            volume.add(now, int(event.details.get("bytes_sent") or 0), int(event.details.get("connections") or 0))

    def _prune(self, now: float) -> None:
        for tree in self._trees.values():  # a busy server's tree lives on; its peers quiet for a day go
            for peer in [p for p, v in tree.serving.items() if now - v.latest()[0] > DAY]:
                del tree.serving[peer]
        idle = [k for k, t in self._trees.items() if now - t.last > TREE_IDLE_SECONDS]
        for key in idle:
            del self._trees[key]
        if idle:
            self.reading_trees = frozenset(k for k in self.reading_trees if k in self._trees)
        for stale in [k for k, i in self._incidents.items() if now - i.last > TREE_IDLE_SECONDS]:
            del self._incidents[stale]

    # ------------------------------------------------------------------ rules

    def _evaluate(self, armed: _Armed, event: Event, fields: dict[str, Any], tree: TreeState, key: str,
                  now: float, transfer: Transfer | None, staging: Staging | None) -> Alert | None:
        rule = armed.rule
        steps: tuple[SequenceStep, ...] = ()
        if rule.sequence is not None:
            matched = self._advance(rule, fields, tree, now)
            if matched is None:
                return None
            steps = matched
        elif not rule.condition(fields):
            return None
        allow = armed.allow
        if self._allowed(allow, fields):
            return None
        verdict = _RULE_MATCH
        if armed.correlation is not None:
            found = armed.correlation.decide(Situation(event, fields, tree, now, allow, transfer, staging),
                                             armed.values)
            if found is None:
                return None
            verdict = found
        destination = verdict.destination
        if destination is None and event.action == Action.NETWORK_CONNECTION:
            dest = event.details.get("destination") or {}
            destination = Destination("network", dest.get("address"), dest.get("port"))
        model = event.model or (event.file.path if event.file else None) or tree.only_model()
        tree_wide = armed.correlation is not None and armed.correlation.tree_wide
        return self._incident(rule, event, fields, key, model, now, verdict, destination, steps, tree_wide)

    def _advance(self, rule: Rule, fields: dict[str, Any], tree: TreeState, now: float
                 ) -> tuple[SequenceStep, ...] | None:
        sequence = rule.sequence
        assert sequence is not None
        index, start, matched = tree.steps.get(rule.id, (0, now, ()))
        if index and now - start > sequence.within:
            index, start, matched = 0, now, ()
        if sequence.steps[0].condition(fields) and index == 0:
            start, matched = now, ()
        step = sequence.steps[index]
        if not step.condition(fields):
            return None
        matched = (*matched, SequenceStep(step.name, str(fields["event.action"]), str(fields["event.id"])))
        if index == 0:
            start = now
        if index + 1 < len(sequence.steps):
            tree.steps[rule.id] = (index + 1, start, matched)
            return None
        tree.steps.pop(rule.id, None)
        return matched

    def _allowed(self, allow: Allowlist, fields: dict[str, Any]) -> bool:
        # The real program (the one `ld.so` loads, else the executable) by its path, and by its content's hash
        # as the process ran it when the sensor read it: a renamed or copied binary matches neither.
        executable = fields.get("process.program") or fields.get("process.executable")
        for entry in allow.processes:
            if executable and fnmatch.fnmatchcase(str(executable), entry.executable):
                if entry.sha256 is None:
                    return True
                digest = fields.get("process.program_sha256")
                if not isinstance(digest, str):
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

    # ------------------------------------------------------------------ incidents

    def _incident(self, rule: Rule, event: Event, fields: dict[str, Any], tree_key: str, model: str | None,
                  now: float, verdict: Verdict, destination: Destination | None, steps: tuple[SequenceStep, ...],
                  tree_wide: bool) -> Alert | None:
        # Tree-wide correlations are one incident per tree, whichever model the triggering event names.
        subject = verdict.subject or ("*" if tree_wide else (model or "?"))
        key = (rule.id, tree_key, subject)
        progress = verdict.progress
        incident = self._incidents.get(key)
        if incident is not None and now - incident.last <= rule.window:
            incident.last = now
            incident.count += 1
            if len(incident.timeline) < TIMELINE_LIMIT:
                incident.timeline.append(_entry(event))
            step = int(progress * 4) if progress is not None else 0
            if step <= incident.progress_step and rule.severity <= incident.severity:
                return None  # a repeat: folded into the incident
            incident.progress_step = max(step, incident.progress_step)
            incident.updates += 1
            alert = self._alert(rule, event, fields, model, verdict, destination, steps, incident, incident.first_id)
            incident.severity = alert.severity
            return alert
        incident = _Incident(first=now, last=now, timeline=[_entry(event)])
        incident.progress_step = int(progress * 4) if progress is not None else 0
        alert = self._alert(rule, event, fields, model, verdict, destination, steps, incident, None)
        incident.severity, incident.first_id = alert.severity, alert.id
        self._incidents[key] = incident
        return alert

    def _alert(self, rule: Rule, event: Event, fields: dict[str, Any], model: str | None, verdict: Verdict,
               destination: Destination | None, steps: tuple[SequenceStep, ...], incident: _Incident,
               first: str | None) -> Alert:
        paths = tuple(dict.fromkeys(p for p in (event.file.path if event.file else None,
                                                fields.get("staging.output")) if isinstance(p, str)))
        alert_id = new_id()
        evidence: AlertEvidence = dataclasses.replace(
            verdict.evidence, description=rule.description, techniques=rule.techniques,
            process_tree=fields.get("process.tree"), events=incident.count, updates=incident.updates,
            first_seen=incident.timeline[0].time, timeline=tuple(incident.timeline), canary=bool(fields.get("canary")),
            sequence=steps, incident=first or alert_id)  # an incident's first alert names itself; updates the first
        return Alert(rule_id=rule.id, title=rule.title + (f": {model}" if model else ""), severity=rule.severity,
                     message=f"{rule.title}: {event.message}{verdict.detail}", paths=paths,
                     model=event.model or model, process=event.process, destination=destination,
                     evidence=evidence, event_ids=tuple(e.event_id for e in incident.timeline[-20:]), id=alert_id)


def _entry(event: Event) -> TimelineEntry:
    return TimelineEntry(format_time(event.time), str(event.action), event.id, event.message)


_RULE_MATCH = Verdict(RuleMatchEvidence())  # a rule without a correlation: its condition (or sequence) matched
