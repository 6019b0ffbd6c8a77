"""Detection rules as Sigma rules over the agent's ECS documents (`weightwarden rules export --sigma DIR`).

Each rule whose judgement a SIEM can repeat on the forwarded ECS records becomes one Sigma rule:

- id: a UUIDv5 of the rule id (stable across exports and machines), title, description, level from the
  severity (0-1 informational, 2-3 low, 4-5 medium, 6-8 high, 9-10 critical), status (`test` for the
  built-in rules, which have fixtures; `experimental` for others), tags `attack.t1005` and `atlas.aml.t0035`;
- logsource `product: weightwarden, service: ecs`: the ECS documents the agent forwards (`_bulk` into
  `logs-weightwarden.*`, HEC, JSON lines with format = "ecs"), documented in docs/siem.md;
- detection: the condition, field by field through agent/siem/ecs_fields.py, with Sigma's modifiers
  (`|in` and plain equality -> a value list, `|startswith`, `|endswith`, `|contains`, `|gt`..., `|exists`,
  `glob` -> Sigma wildcards), `all`/`any`/`not` -> the condition expression; the engine's own gate (only
  events, only the actions it judges) and the rule's user and path allowlists are part of it.

A rule is not exported, and `Skipped` says why, when the SIEM cannot judge it as the agent does: its
condition reads a field the ECS record does not carry (the process tree's names, the parsed transfer
command...), it is a correlation the agent computes over its own state (per process tree, on flows, on
fingerprint matches) or a sequence (per process tree, which the record does not name), or it uses what
Sigma or Lucene cannot say the same way (regular expressions: the agent searches case-insensitively and
unanchored, Lucene regexps are anchored; glob character classes). Never a rule that is silently different.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from weightwarden.agent.detect.engine import JUDGED_ACTIONS
from weightwarden.agent.detect.rules import Rule
from weightwarden.agent.siem.ecs_fields import ecs_field

# The namespace of the Sigma ids: uuid5(SIGMA_NAMESPACE, rule id). Never change it: SIEMs key on the ids.
SIGMA_NAMESPACE = uuid.UUID("8f0c1e52-4f3e-5b7a-9d41-6a7e2b0c5d13")
LOGSOURCE = {"product": "weightwarden", "service": "ecs"}
AUTHOR = "Weightwarden (exported from rules/detections)"

_CORRELATION_REASONS = {
    "copy": "model-copy is judged on fingerprint matches of new files (quick fingerprint, SHA-256, tensor "
            "prints) inside the agent, not on forwarded events",
    "lineage": "model-lineage is judged on the agent's flow accounting (bytes a flow of processes read from a "
               "model and wrote or sent), which is not forwarded event by event",
    "egress-budget": "the egress budget compares the bytes a process tree sent with the bytes of the model the "
                     "same tree read: a ratio of two per-tree sums, and the record names no process tree; a "
                     "Sigma correlation compares one aggregate with a constant",
    "bulk-collection": "bulk collection counts distinct models per process tree; the record names no process "
                       "tree, and counting per host or user instead would be another rule",
    "transfer-tool": "the transfer tool and its destination come from the command line the agent parsed; "
                     "they are not forwarded",
    "staging": "the archiver and its output come from the command line the agent parsed; they are not forwarded",
}
_MODIFIERS = {"startswith": "|startswith", "endswith": "|endswith", "contains": "|contains",
              "gt": "|gt", "gte": "|gte", "lt": "|lt", "lte": "|lte"}


@dataclass(frozen=True, slots=True)
class Exported:
    rule: Rule
    sigma: dict[str, Any]  # the Sigma rule, ready for yaml.safe_dump

    @property
    def file_name(self) -> str:
        return f"{self.rule.id}.yml"


@dataclass(frozen=True, slots=True)
class Skipped:
    rule: Rule
    reason: str


class Untranslatable(Exception):
    """A condition (or allowlist) Sigma over the ECS records cannot express faithfully; the message says why."""


def sigma_id(rule_id: str) -> str:
    return str(uuid.uuid5(SIGMA_NAMESPACE, rule_id))


def level(severity: int) -> str:
    if severity <= 1:
        return "informational"
    if severity <= 3:
        return "low"
    if severity <= 5:
        return "medium"
    if severity <= 8:
        return "high"
    return "critical"


def tags(techniques: tuple[str, ...]) -> list[str]:
    """`attack.t1565.001`, `attack.ta0010` for ATT&CK; `atlas.aml.t0035` for ATLAS (Sigma tags are lowercase)."""
    return [("atlas." if t.startswith("AML.") else "attack.") + t.lower() for t in techniques]


def export(rule: Rule, *, builtin: bool = False) -> Exported | Skipped:
    """The rule as a Sigma rule, or why it cannot be one."""
    if rule.correlate is not None:
        return Skipped(rule, _CORRELATION_REASONS.get(rule.correlate, f"correlation {rule.correlate} is "
                                                                       "computed by the agent"))
    if rule.sequence is not None:
        return Skipped(rule, "a sequence is matched per process tree, and the record names no process tree")
    try:
        detection = _detection(rule)
    except Untranslatable as why:
        return Skipped(rule, str(why))
    sigma: dict[str, Any] = {
        "title": rule.title,
        "id": sigma_id(rule.id),
        "name": rule.id,
        "status": "test" if builtin else "experimental",
        "description": rule.description or rule.title,
        "references": ["docs/rules.md", "docs/siem.md"],
        "author": AUTHOR,
        "tags": tags(rule.techniques),
        "logsource": dict(LOGSOURCE),
        "detection": detection,
        "fields": ["host.name", "user.name", "process.name", "process.pid", "file.path", "weightwarden.model"],
        "falsepositives": ["What the agent's [detect] allowlists (allow_processes, allow_users, "
                           "allow_destinations) exempt on the endpoint: add the same exceptions here"],
        "level": level(rule.severity),
        "weightwarden_rule": {"id": rule.id, "severity": rule.severity, "file": os.path.basename(rule.path),
                              "line": rule.line},
    }
    return Exported(rule, sigma)


class _Selections:
    """Named Sigma selections and the condition expression over them."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def add(self, prefix: str, selection: Mapping[str, Any]) -> str:
        name = f"{prefix}_{sum(1 for n in self.named if n.startswith(prefix + '_')) + 1}"
        self.named[name] = dict(selection)
        return name


def _detection(rule: Rule) -> dict[str, Any]:
    selections = _Selections()
    # The engine's gate (detect/engine.py): only events, and only the actions it judges.
    gate = "judged"
    selections.named[gate] = {"event.kind": "event", "event.action": sorted(str(a) for a in JUDGED_ACTIONS)}
    condition = f"{gate} and {_expression(rule.condition.source, selections)}"
    allowed = _allowlist(rule, selections)
    if allowed:
        condition += f" and not ({' or '.join(allowed)})"
    return {**selections.named, "condition": condition}


def _expression(raw: Any, selections: _Selections) -> str:
    """A condition mapping (all entries hold) as a Sigma condition expression over new selections; anything
    made of more than one term comes back in parentheses, so it nests as it is."""
    if not isinstance(raw, Mapping) or not raw:
        raise Untranslatable("the condition is not a mapping of field tests")
    fields: dict[str, Any] = {}
    parts: list[str] = []
    for key, value in raw.items():
        if key in ("all", "any"):
            parts.append(_joined([_expression(item, selections) for item in value], "and" if key == "all" else "or"))
        elif key == "not":
            parts.append(f"not {_expression(value, selections)}")
        else:
            sigma_key, sigma_value = _field_test(str(key), value)
            if sigma_key in fields:  # the same Sigma key twice (a == b and a|in [...]): its own selection
                parts.append(selections.add("selection", {sigma_key: sigma_value}))
            else:
                fields[sigma_key] = sigma_value
    if fields:
        parts.insert(0, selections.add("selection", fields))
    return _joined(parts, "and")


def _joined(parts: list[str], operator: str) -> str:
    return parts[0] if len(parts) == 1 else "(" + f" {operator} ".join(parts) + ")"


def _field_test(key: str, value: Any) -> tuple[str, Any]:
    name, _, operator = key.partition("|")
    operator = operator or "eq"
    field, why = ecs_field(name)
    if field is None:
        raise Untranslatable(f"the condition reads {name}: {why}")
    if operator == "exists":
        return f"{field}|exists", bool(value)
    if operator == "re":
        raise Untranslatable(f"{key}: a regular expression (the agent searches case-insensitively and unanchored; "
                             "Lucene regexps are anchored and take no flags)")
    values = list(value) if isinstance(value, list) else [value]
    if operator in ("gt", "gte", "lt", "lte"):
        return field + _MODIFIERS[operator], values[0]
    if operator == "glob":
        if any("[" in str(v) for v in values):
            raise Untranslatable(f"{key}: a glob character class ([...]) has no Sigma wildcard")
        converted = [str(v).replace("\\", "\\\\") for v in values]
        return field, converted[0] if len(converted) == 1 else converted
    plain = [_plain(v) for v in values]
    sigma_key = field + _MODIFIERS.get(operator, "")
    return sigma_key, plain[0] if len(plain) == 1 else plain


def _plain(value: Any) -> Any:
    """A literal value: Sigma's wildcards (* ?) and its escape character escaped in text."""
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
    return value


def _allowlist(rule: Rule, selections: _Selections) -> list[str]:
    """Selections for the rule's own allowlist (a match is exempt), or Untranslatable."""
    allow = rule.allow
    if allow.processes:
        raise Untranslatable("allow.processes matches the real program and its SHA-256, which are not forwarded")
    if allow.destinations:
        raise Untranslatable("allow.destinations matches a connection's destination or a parsed transfer "
                             "target, which the template does not index")
    names = []
    if allow.users:
        names.append(selections.add("allowed", {"user.name": [_plain(u) for u in allow.users]}))
    if allow.paths:
        if any("[" in p for p in allow.paths):
            raise Untranslatable("allow.paths: a glob character class ([...]) has no Sigma wildcard")
        names.append(selections.add("allowed", {"file.path": [p.replace("\\", "\\\\") for p in allow.paths]}))
    return names
