"""The correlation registry: each kind declares its parameters; rules are checked from it; [detect] settings
override a rule's parameter only when they are set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.agent.detect.fixture_cases import detect_settings
from weightwarden.agent.config import DetectSection
from weightwarden.agent.detect.correlations import KINDS, REGISTRY, settings_keys
from weightwarden.agent.detect.engine import DetectionEngine, DetectSettings
from weightwarden.agent.detect.policy import Detector
from weightwarden.agent.detect.replay import event_from, process_from
from weightwarden.agent.detect.rules import load_rules
from weightwarden.agent.events import Event

DOCS = (Path(__file__).resolve().parents[3] / "docs" / "rules.md").read_text()


def test_each_kind_declares_what_it_counts_and_decides() -> None:
    assert [c.kind for c in REGISTRY] == ["egress-budget", "bulk-collection", "transfer-tool", "staging", "copy",
                                              "lineage", "serving-budget"]
    for correlation in REGISTRY:
        assert correlation.counts and correlation.decides
        names = [p.name for p in correlation.parameters]
        assert len(names) == len(set(names))
        for parameter in correlation.parameters:
            raw = int(parameter.default) if parameter.type == "integer" else parameter.default
            value, problem = parameter.read(raw)
            assert problem is None and value == parameter.default, parameter  # the default is valid


def test_every_override_is_a_detect_setting_unset_by_default() -> None:
    assert settings_keys() == ("egress_ratio", "bulk_models", "bulk_window_seconds", "lineage_ratio",
                               "serving_bytes_per_hour", "serving_bytes_per_day", "serving_burst_connections")
    section, settings = DetectSection(), DetectSettings()
    for key in settings_keys():
        assert getattr(section, key) is None and getattr(settings, key) is None


def test_docs_list_every_kind_parameter_and_setting() -> None:
    for correlation in REGISTRY:
        assert f"| `{correlation.kind}` |" in DOCS, correlation.kind
        for parameter in correlation.parameters:
            assert parameter.describe() in DOCS, parameter.describe()


def test_a_parameter_comes_from_the_setting_when_set_else_the_rule_else_the_default() -> None:
    egress = KINDS["egress-budget"]
    assert egress.resolve({}, {}) == {"ratio": 0.5, "min_bytes": 1.0}
    assert egress.resolve({"ratio": 0.9}, {"egress_ratio": None}) == {"ratio": 0.9, "min_bytes": 1.0}
    assert egress.resolve({"ratio": 0.9}, {"egress_ratio": 0.6}) == {"ratio": 0.6, "min_bytes": 1.0}


BAD_PARAMETERS = """\
id: rule-a
title: t
severity: 3
condition: {event.action: model-read}
correlate: {kind: bulk-collection, distinct_models: 1, within: forever}
---
id: rule-b
title: t
severity: 3
condition: {event.action: network-connection}
correlate: {kind: egress-budget, ratio: 11, min_bytes: 1.5}
---
id: rule-c
title: t
severity: 3
condition: {event.action: model-read}
correlate: {kind: copy-severity}
---
id: rule-d
title: t
severity: 3
condition: {event.action: model-read}
severity_by_destination: {removable: 9}
---
id: rule-e
title: t
severity: 3
correlate: {kind: copy}
severity_by_destination: {removable: 9}
"""


def test_rules_are_checked_from_the_declarations(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(BAD_PARAMETERS)
    rules = load_rules([str(tmp_path / "r.yml")])
    found = sorted((p.line, p.message) for p in rules.problems)
    assert found == [
        (5, "bulk-collection: distinct_models must be at least 2 (distinct models read within the window), got 1"),
        (5, "bulk-collection: within must be a duration like 90s, 10m or 2h, got 'forever'"),
        (11, "egress-budget: min_bytes must be a whole number, got 1.5"),
        (11, "egress-budget: ratio must be at most 10 (0.5 = half the model's bytes), got 11"),
        (17, "unknown correlation 'copy-severity' (one of: egress-budget, bulk-collection, transfer-tool, staging, "
             "copy, lineage, serving-budget)"),
        (23, "severity_by_destination only applies to correlate kind copy, lineage"),
    ]
    assert [r.id for r in rules.rules] == ["rule-e"]  # a kind not fed events needs no condition
    assert rules.rules[0].severity_by_destination == {"removable": 9}


def test_durations_are_read_in_seconds(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text("id: rule-a\ntitle: t\nseverity: 3\ncondition: {event.action: model-read}\n"
                                    "correlate: {kind: bulk-collection, within: 2m}\n")
    (rule,) = load_rules([str(tmp_path / "r.yml")]).rules
    assert rule.parameters == {"within": 120.0}


def _read(engine: DetectionEngine, session: int, at: float) -> None:
    event = event_from({"at": at, "action": "model-read", "path": "/m/a", "model": "a", "size": 10,
                        "process": {"pid": session * 10, "name": "cp", "session": session}})
    assert isinstance(event, Event)
    engine.process(event)


def test_reading_trees_is_replaced_never_changed_in_place() -> None:
    engine = DetectionEngine(load_rules())
    before = engine.reading_trees
    _read(engine, 1, 0)
    first = engine.reading_trees
    assert before == frozenset() and first == {"session:1"} and first is not before
    _read(engine, 1, 1)
    assert engine.reading_trees is first  # nothing changed: the same object
    _read(engine, 2, 2)
    assert engine.reading_trees == {"session:1", "session:2"} and first == {"session:1"}
    assert engine.tree_read_models(process_from({"pid": 99, "name": "curl", "session": 2}))


def test_idle_trees_leave_reading_trees() -> None:
    engine = DetectionEngine(load_rules())
    _read(engine, 1, 0)
    for index in range(1024):  # the engine prunes every 1024 events; the first tree has been idle for hours
        _read(engine, 2, 7200 + index)
    assert engine.reading_trees == {"session:2"}
    assert not engine.tree_read_models(process_from({"pid": 10, "name": "cp", "session": 1}))


def test_the_detector_neither_locks_nor_hides_failures(tmp_path: Path) -> None:
    detector = Detector(load_rules(), detect_settings({}, tmp_path), lambda: ())
    assert not hasattr(detector, "errors") and not hasattr(detector, "_lock")

    def broken() -> frozenset[str]:
        raise RuntimeError("canary registry unreadable")

    failing = Detector(load_rules(), DetectSettings(), broken)
    event = event_from({"action": "model-read", "path": "/m/a", "model": "a", "process": {"name": "cp"}})
    assert isinstance(event, Event)
    with pytest.raises(RuntimeError, match="unreadable"):  # the dispatcher isolates it, and counts it
        failing.process(event)
    assert dataclasses.replace(DetectSettings(), egress_ratio=0.6).overrides() == {
        "egress_ratio": 0.6, "bulk_models": None, "bulk_window_seconds": None, "lineage_ratio": None,
        "serving_bytes_per_hour": None, "serving_bytes_per_day": None, "serving_burst_connections": None}
