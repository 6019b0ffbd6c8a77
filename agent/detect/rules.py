"""Detection rules as data: the YAML format, its loader and every check, each problem with file and line.

One rule per YAML document (a file may hold several, separated by `---`):

    id: browser-opened-model          # lowercase letters, digits and dashes; unique
    title: Protected model opened by a browser
    description: ...
    severity: 8                       # 0-10
    techniques: [T1005, AML.T0035]    # MITRE ATT&CK / ATLAS ids
    condition: {event.action|in: [model-opened, model-read], process.name|in: [firefox, chrome]}
    sequence:                         # optional: steps in order, within a window, in one process tree
      within: 2m
      steps: [{name: read, condition: {...}}, {name: send, condition: {...}}]
    correlate: {kind: egress-budget, ratio: 0.5}   # optional built-in correlation, with its parameters
    allow:                            # optional allowlists
      processes: [{executable: /usr/bin/rsync, sha256: ...}]
      users: [backup]
      destinations: [s3://our-bucket/*, hf://our-org/*, git@github.com:our-org/*, 10.0.0.*]
      paths: [/srv/scratch/*]
    window: 10m                       # events of one tree and model within this merge into one alert

docs/rules.md is the writing guide. `weightwarden rules check` runs `load_rules` and prints every problem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from weightwarden.agent.detect.condition import Condition, always, compile_condition
from weightwarden.agent.detect.correlations import KINDS, Correlation
from weightwarden.agent.detect.durations import parse_duration
from weightwarden.agent.located.problem import Problem, Problems
from weightwarden.agent.located.yaml_reader import line_of, read_documents

RULE_KEYS = ("id", "title", "description", "severity", "techniques", "condition", "sequence", "correlate",
             "allow", "window", "enabled", "severity_by_destination")
ALLOW_KEYS = ("processes", "users", "destinations", "paths")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_TECHNIQUE = re.compile(r"^(T\d{4}(\.\d{3})?|AML\.T\d{4}(\.\d{3})?|TA\d{4}|AML\.TA\d{4})$")


@dataclass(frozen=True, slots=True)
class ProcessAllow:
    executable: str  # a glob over the executable path
    sha256: str | None = None  # when set, the executable's content must also match


@dataclass(frozen=True, slots=True)
class Allowlist:
    processes: tuple[ProcessAllow, ...] = ()
    users: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()  # globs over parsed destinations: s3://b/k, hf://org/repo, host, ...
    paths: tuple[str, ...] = ()  # globs over file paths

    def merged(self, other: Allowlist) -> Allowlist:
        return Allowlist(self.processes + other.processes, self.users + other.users,
                         self.destinations + other.destinations, self.paths + other.paths)


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    condition: Condition


@dataclass(frozen=True, slots=True)
class Sequence:
    within: float  # seconds
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    severity: int
    condition: Condition
    description: str = ""
    techniques: tuple[str, ...] = ()
    sequence: Sequence | None = None
    correlate: str | None = None  # a kind of the correlation registry (detect/correlations)
    parameters: Mapping[str, float] = field(default_factory=dict)  # as the rule gave them (durations in seconds)
    allow: Allowlist = field(default_factory=Allowlist)
    window: float = 600.0
    severity_by_destination: Mapping[str, int] = field(default_factory=dict)
    path: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    problems: tuple[Problem, ...]  # each with its file, line and (when known) "rule ID" as subject
    files: tuple[str, ...] = ()

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def builtin_rule_files() -> list[str]:
    """The rules shipped with the agent (weightwarden.rules/detections/*.yml), in name order."""
    folder = resources.files("weightwarden.rules") / "detections"
    return sorted(str(item) for item in folder.iterdir() if item.name.endswith((".yml", ".yaml")))


def rule_files(paths: Iterable[str]) -> list[str]:
    """Rule files named or found (one level) in the given files and folders."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith((".yml", ".yaml"))))
        else:
            found.append(path)
    return found


def load_rules(paths: Iterable[str] | None = None) -> RuleSet:
    """Every rule of the files (the built-in ones by default) and every problem, in one pass."""
    files = rule_files(paths) if paths is not None else builtin_rule_files()
    rules: list[Rule] = []
    problems: list[Problem] = []
    seen: dict[str, Rule] = {}
    for path in files:
        for rule in _load_file(path, problems):
            if rule.id in seen:
                first = seen[rule.id]
                _about(path, problems, rule.id).add(rule.line,
                                                    f"duplicate rule id (first at {first.path}:{first.line})")
                continue
            seen[rule.id] = rule
            rules.append(rule)
    return RuleSet(tuple(rules), tuple(problems), tuple(files))


def _load_file(path: str, problems: list[Problem]) -> list[Rule]:
    documents = read_documents(path, problems, "rules")
    rules = []
    for document in documents:
        rule = _rule(path, document, problems)
        if rule is not None:
            rules.append(rule)
    return rules


def _about(path: str, problems: list[Problem], rule_id: str | None = None) -> Problems:
    """A collector adding to `problems`, located in `path` and (when known) naming the rule."""
    return Problems(path, f"rule {rule_id}" if rule_id else None, problems)


def _rule(path: str, raw: Any, problems: list[Problem]) -> Rule | None:
    if not isinstance(raw, Mapping):
        _about(path, problems).add(line_of(raw), "a rule must be a mapping (id, title, severity, condition, ...)")
        return None
    rule_id = raw.get("id")
    out = _about(path, problems, rule_id if isinstance(rule_id, str) else None)
    for key in raw:
        if key not in RULE_KEYS:
            out.add(line_of(raw, key), f"unknown key {key!r} (known: {', '.join(RULE_KEYS)})")
    named = raw.get("correlate")
    kind_name = named.get("kind") if isinstance(named, Mapping) else None
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    for key in ("id", "title", "severity", "condition"):
        # A sequence has its conditions in its steps; a kind not fed events (copy) needs none.
        if key not in raw and not (key == "condition" and ("sequence" in raw or (kind and not kind.on_events))):
            out.add(line_of(raw), f"missing required key {key!r}")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        if "id" in raw:
            out.add(line_of(raw, "id"), f"id {rule_id!r} must be lowercase letters, digits and dashes")
        rule_id = ""
    title = raw.get("title")
    if "title" in raw and (not isinstance(title, str) or not title.strip()):
        out.add(line_of(raw, "title"), "title must be non-empty text")
    description = raw.get("description", "")
    if not isinstance(description, str):
        out.add(line_of(raw, "description"), "description must be text")
        description = ""
    severity = raw.get("severity")
    if "severity" in raw and (isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 10):
        out.add(line_of(raw, "severity"), f"severity must be a whole number 0-10, got {severity!r}")
    techniques = raw.get("techniques", [])
    if not isinstance(techniques, list):
        out.add(line_of(raw, "techniques"), "techniques must be a list of ATT&CK/ATLAS ids")
        techniques = []
    for index, technique in enumerate(techniques):
        if not isinstance(technique, str) or not _TECHNIQUE.match(technique):
            out.add(line_of(techniques, index),
                    f"{technique!r} is not an ATT&CK (T1048, T1048.003) or ATLAS (AML.T0035) technique id")
    condition = _condition(raw, "condition", out) if "condition" in raw else None
    sequence = _sequence(raw["sequence"], out) if "sequence" in raw else None
    correlate, parameters = _correlation(raw, out)
    allow = _allowlist(raw["allow"], out) if "allow" in raw else Allowlist()
    window = _duration(raw, "window", 600.0, out)
    by_destination = _severity_map(raw, out)
    if by_destination and not (kind and kind.takes_severity_by_destination):
        takers = ", ".join(k for k, c in KINDS.items() if c.takes_severity_by_destination)
        out.add(line_of(raw, "severity_by_destination"), f"severity_by_destination only applies to correlate "
                                                         f"kind {takers}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        out.add(line_of(raw, "enabled"), "enabled must be true or false")
    if out.count or not enabled:
        return None
    assert isinstance(title, str) and isinstance(severity, int)
    return Rule(id=rule_id, title=title.strip(), severity=severity,
                condition=condition or compile_condition({"event.action|exists": True}, _about(path, [])),
                description=description.strip(), techniques=tuple(techniques), sequence=sequence,
                correlate=correlate, parameters=parameters, allow=allow, window=window,
                severity_by_destination=by_destination, path=path, line=line_of(raw))


def _condition(raw: Mapping[str, Any], key: str, out: Problems) -> Condition:
    value = raw[key]
    if not isinstance(value, Mapping):
        out.add(line_of(raw, key), f"{key} must be a mapping of field tests")
        return Condition(always, ())
    return compile_condition(value, out)


def _duration(raw: Mapping[str, Any], key: str, default: float, out: Problems) -> float:
    if key not in raw:
        return default
    seconds = parse_duration(raw[key])
    if seconds is None or seconds <= 0:
        out.add(line_of(raw, key), f"{key} must be a duration like 30s, 10m or 2h, got {raw[key]!r}")
        return default
    return seconds


def _sequence(raw: Any, out: Problems) -> Sequence | None:
    if not isinstance(raw, Mapping):
        out.add(line_of(raw), "sequence must be a mapping with within and steps")
        return None
    for key in raw:
        if key not in ("within", "steps"):
            out.add(line_of(raw, key), f"unknown sequence key {key!r} (known: within, steps)")
    within = _duration(raw, "within", 0.0, out)
    if "within" not in raw:
        out.add(line_of(raw), "sequence needs within (the time window of its steps)")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or len(steps_raw) < 2:
        out.add(line_of(raw, "steps"), "sequence needs steps: a list of at least two {name, condition}")
        return None
    steps = []
    names: set[str] = set()
    for index, step in enumerate(steps_raw):
        if not isinstance(step, Mapping) or "condition" not in step:
            out.add(line_of(steps_raw, index), "a step is a mapping with name and condition")
            continue
        for key in step:
            if key not in ("name", "condition"):
                out.add(line_of(step, key), f"unknown step key {key!r} (known: name, condition)")
        name = str(step.get("name", f"step{index + 1}"))
        if name in names:
            out.add(line_of(step, "name"), f"duplicate step name {name!r}")
        names.add(name)
        steps.append(Step(name, _condition(step, "condition", out)))
    return Sequence(within, tuple(steps))


def _correlation(raw: Mapping[str, Any], out: Problems) -> tuple[str | None, dict[str, float]]:
    """The kind and the parameters a rule's `correlate:` gives, checked against the registry's declarations."""
    if "correlate" not in raw:
        return None, {}
    value = raw["correlate"]
    kinds = ", ".join(KINDS)
    if not isinstance(value, Mapping) or "kind" not in value:
        out.add(line_of(raw, "correlate"), f"correlate must be a mapping with kind (one of: {kinds})")
        return None, {}
    kind = value["kind"]
    correlation: Correlation | None = KINDS.get(kind) if isinstance(kind, str) else None
    if correlation is None:
        out.add(line_of(value, "kind"), f"unknown correlation {kind!r} (one of: {kinds})")
        return None, {}
    parameters: dict[str, float] = {}
    for key, item in value.items():
        if key == "kind":
            continue
        parameter = correlation.parameter(str(key))
        if parameter is None:
            known = ", ".join(p.name for p in correlation.parameters)
            out.add(line_of(value, key), f"{kind} takes no parameter {key!r}" + (f" (known: {known})" if known else ""))
            continue
        number, problem = parameter.read(item)
        if problem is not None or number is None:
            out.add(line_of(value, key), f"{kind}: {problem}")
        else:
            parameters[parameter.name] = number
    return str(kind), parameters


def _allowlist(raw: Any, out: Problems) -> Allowlist:
    if not isinstance(raw, Mapping):
        out.add(line_of(raw), f"allow must be a mapping with any of: {', '.join(ALLOW_KEYS)}")
        return Allowlist()
    texts: dict[str, tuple[str, ...]] = {}
    processes: list[ProcessAllow] = []
    for key, value in raw.items():
        if key not in ALLOW_KEYS:
            out.add(line_of(raw, key), f"unknown allowlist {key!r} (known: {', '.join(ALLOW_KEYS)})")
            continue
        if not isinstance(value, list):
            out.add(line_of(raw, key), f"allow.{key} must be a list")
            continue
        if key == "processes":
            for index, item in enumerate(value):
                entry = _process_allow(item, line_of(value, index), out)
                if entry is not None:
                    processes.append(entry)
            continue
        for index, item in enumerate(value):
            if not isinstance(item, str | int) or isinstance(item, bool) or not str(item).strip():
                out.add(line_of(value, index), f"allow.{key}: items must be non-empty text")
        texts[key] = tuple(str(item) for item in value if isinstance(item, str | int))
    return Allowlist(tuple(processes), texts.get("users", ()), texts.get("destinations", ()), texts.get("paths", ()))


def _process_allow(item: Any, line: int, out: Problems) -> ProcessAllow | None:
    if isinstance(item, str):
        item = {"executable": item}
    if not isinstance(item, Mapping) or not isinstance(item.get("executable"), str):
        out.add(line, "allow.processes: items are {executable: PATH-GLOB, sha256: HEX} (sha256 optional)")
        return None
    for key in item:
        if key not in ("executable", "sha256"):
            out.add(line_of(item, key), f"allow.processes: unknown key {key!r} (known: executable, sha256)")
    digest = item.get("sha256")
    if digest is not None and (not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest)):
        out.add(line_of(item, "sha256"), "allow.processes: sha256 must be 64 hex digits")
        return None
    return ProcessAllow(str(item["executable"]), digest.lower() if isinstance(digest, str) else None)


def _severity_map(raw: Mapping[str, Any], out: Problems) -> dict[str, int]:
    if "severity_by_destination" not in raw:
        return {}
    value = raw["severity_by_destination"]
    if not isinstance(value, Mapping):
        out.add(line_of(raw, "severity_by_destination"), "severity_by_destination must map destination kinds "
                                                         "to severities")
        return {}
    mapping: dict[str, int] = {}
    for kind, severity in value.items():
        if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 10:
            out.add(line_of(value, kind), f"severity for {kind!r} must be a whole number 0-10")
        else:
            mapping[str(kind)] = severity
    return mapping
