"""One runner for every rule fixture: tests/agent/detect/fixtures/*.yml, events in, expected alerts out.

A fixture file:

    cases:
      - name: what this case shows
        rules: [rule-id, ...]            # optional: only these built-in rules (default: all)
        settings: {egress_ratio: 0.8, allow_destinations: [...], ...}   # optional [detect] settings
        canaries: [/path/of/a/decoy]     # optional
        events: [{at: 0, action: model-read, ...}, ...]     # agent/detect/replay.py
        alerts: [{rule: ..., severity: 8, evidence: {...}}]  # in order; each key must match (subset)

Every built-in rule must have a case where it alerts and a case where it stays quiet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from weightwarden.agent.detect.engine import DetectionEngine, DetectSettings
from weightwarden.agent.detect.replay import event_from
from weightwarden.agent.detect.rules import Allowlist, ProcessAllow, RuleSet, load_rules
from weightwarden.agent.events import Alert

FIXTURES = Path(__file__).parent / "fixtures"
BUILTIN = load_rules()


def _cases() -> list[Any]:
    found = []
    for path in sorted(FIXTURES.glob("*.yml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            found.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return found


def settings_from(raw: dict[str, Any]) -> DetectSettings:
    allow = Allowlist(
        processes=tuple(ProcessAllow(p["executable"], p.get("sha256")) if isinstance(p, dict) else ProcessAllow(p)
                        for p in raw.get("allow_processes", [])),
        users=tuple(raw.get("allow_users", [])), destinations=tuple(raw.get("allow_destinations", [])),
        paths=tuple(raw.get("allow_paths", [])))
    return DetectSettings(allow=allow, egress_ratio=raw.get("egress_ratio"), bulk_models=raw.get("bulk_models"),
                          bulk_window=raw.get("bulk_window"), disabled=tuple(raw.get("disabled", [])))


def run_case(case: dict[str, Any]) -> list[Alert]:
    rules = BUILTIN
    if "rules" in case:
        rules = RuleSet(tuple(r for r in BUILTIN.rules if r.id in case["rules"]), ())
    canaries = case.get("canaries", [])
    hashes = case.get("exe_sha256", {})
    engine = DetectionEngine(rules, settings_from(case.get("settings", {})), canaries=lambda: canaries,
                             exe_sha256=hashes.get)
    alerts: list[Alert] = []
    for raw in case["events"]:
        item = event_from(raw)
        if isinstance(item, Alert):
            alerts.append(engine.adjust_copy(item))
        else:
            alerts.extend(engine.process(item))
    return alerts


def _subset(expected: Any, actual: Any, where: str) -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected a mapping, got {actual!r}"]
        return [p for key, value in expected.items() for p in _subset(value, actual.get(key), f"{where}.{key}")]
    if isinstance(expected, list) and isinstance(actual, list) and any(isinstance(e, dict) for e in expected):
        if len(expected) != len(actual):
            return [f"{where}: expected {len(expected)} items, got {actual!r}"]
        return [p for index, (want, got) in enumerate(zip(expected, actual, strict=True))
                for p in _subset(want, got, f"{where}[{index}]")]
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def _view(alert: Alert) -> dict[str, Any]:
    record = alert.to_dict()
    return {**record, "rule": alert.rule_id, "destination": record["destination"] or {}}


@pytest.mark.parametrize("case", _cases())
def test_fixture(case: dict[str, Any]) -> None:
    alerts = run_case(case)
    expected = case.get("alerts", [])
    got = [f"{a.rule_id} ({a.severity}): {a.message}" for a in alerts]
    assert len(alerts) == len(expected), f"expected {len(expected)} alerts, got {got}"
    problems = [p for index, (want, alert) in enumerate(zip(expected, alerts, strict=True))
                for p in _subset(want, _view(alert), f"alert[{index}]")]
    assert problems == [], "\n".join(problems + got)


def test_every_builtin_rule_has_fixtures_that_alert_and_stay_quiet() -> None:
    alerting: set[str] = set()
    quiet: set[str] = set()
    for path in sorted(FIXTURES.glob("*.yml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            fired = {a.get("rule") for a in case.get("alerts", [])}
            if None in fired:  # an expectation without a rule id is one of the case's selected rules
                fired = fired - {None} | set(case.get("rules", []))
            alerting |= fired
            selected = set(case.get("rules", [r.id for r in BUILTIN.rules]))
            quiet |= selected - fired
    ids = {r.id for r in BUILTIN.rules}
    assert ids - alerting == set(), "rules without a fixture that alerts"
    assert ids - quiet == set(), "rules without a fixture where they stay quiet"


def test_builtin_rules_load_without_problems() -> None:
    assert [str(p) for p in BUILTIN.problems] == []
    assert len(BUILTIN.rules) >= 8
