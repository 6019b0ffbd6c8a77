"""One runner for every rule fixture: tests/agent/detect/fixtures/*.yml, events in, expected alerts out.

A fixture file:

    cases:
      - name: what this case shows
        rules: [rule-id, ...]            # optional: only these built-in rules (default: all)
        settings: {egress_ratio: 0.8, allow_destinations: [...], ...}   # optional: the config's [detect] table
        rule_edit: {file: 50_egress_budget.yml, replace: {"ratio: 0.5": "ratio: 0.9"}}   # optional
        canaries: [/path/of/a/decoy]     # optional
        events: [{at: 0, action: model-read, ...}, ...]     # agent/detect/replay.py
        alerts: [{rule: ..., severity: 8, evidence: {...}}]  # in order; each key must match (subset)

The settings go through the agent's own config path (fixture_cases.py): a [detect] table in a config
file, `load_config`, `settings_from_config`. Every built-in rule must have a case where it alerts and a
case where it stays quiet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.agent.detect.fixture_cases import BUILTIN, cases, detect_settings, run_case
from weightwarden.agent.alert_evidence import evidence_from
from weightwarden.agent.events import Alert


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


@pytest.mark.parametrize("case", [pytest.param(case, id=name) for name, case in cases()])
def test_fixture(case: dict[str, Any], tmp_path: Path) -> None:
    alerts = run_case(case, tmp_path)
    expected = case.get("alerts", [])
    got = [f"{a.rule_id} ({a.severity}): {a.message}" for a in alerts]
    assert len(alerts) == len(expected), f"expected {len(expected)} alerts, got {got}"
    problems = [p for index, (want, alert) in enumerate(zip(expected, alerts, strict=True))
                for p in _subset(want, _view(alert), f"alert[{index}]")]
    assert problems == [], "\n".join(problems + got)
    for alert in alerts:  # what is stored reads back as the evidence the engine made
        assert evidence_from(alert.to_dict()["evidence"]) == alert.evidence


def test_every_builtin_rule_has_fixtures_that_alert_and_stay_quiet() -> None:
    alerting: set[str] = set()
    quiet: set[str] = set()
    for _name, case in cases():
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


def test_detect_settings_are_unset_unless_the_config_sets_them(tmp_path: Path) -> None:
    unset = detect_settings({}, tmp_path)
    assert (unset.egress_ratio, unset.bulk_models, unset.bulk_window_seconds) == (None, None, None)
    set_ = detect_settings({"egress_ratio": 0.6, "bulk_models": 3, "bulk_window_seconds": 60}, tmp_path)
    assert (set_.egress_ratio, set_.bulk_models, set_.bulk_window_seconds) == (0.6, 3, 60.0)
