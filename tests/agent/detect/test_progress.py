"""Live egress progress: which trees the network sensor reports progress for, and the updates that follow."""

from __future__ import annotations

from weightwarden.agent.alert_evidence import EgressBudgetEvidence
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.replay import event_from, process_from
from weightwarden.agent.detect.rules import RuleSet, load_rules
from weightwarden.agent.events import Event

RULES = load_rules()


def _event(raw: dict[str, object]) -> Event:
    item = event_from(raw)
    assert isinstance(item, Event)
    return item


def test_only_trees_that_read_a_model_are_of_interest() -> None:
    engine = DetectionEngine(RULES)
    reader = {"pid": 10, "name": "python3", "session": 3}
    assert not engine.tree_read_models(process_from(reader))
    engine.process(_event({"at": 0, "action": "model-opened", "path": "/m/a", "model": "a", "process": reader}))
    assert not engine.tree_read_models(process_from(reader))  # opened, not read yet
    engine.process(_event({"at": 1, "action": "model-read", "path": "/m/a", "model": "a", "size": 100,
                           "process": reader}))
    assert engine.tree_read_models(process_from({"pid": 11, "name": "curl", "session": 3}))  # same tree
    assert not engine.tree_read_models(process_from({"pid": 12, "name": "curl", "session": 4}))
    assert not engine.tree_read_models(None)


def test_progress_observations_of_one_connection_update_one_incident_per_quarter() -> None:
    egress = RuleSet(tuple(r for r in RULES.rules if r.id == "model-egress-budget"), ())
    engine = DetectionEngine(egress)
    process = {"pid": 20, "name": "python3", "session": 5}
    engine.process(_event({"at": 0, "action": "model-read", "path": "/m/a", "model": "a", "size": 8 << 20,
                           "process": process}))
    found = []
    for second, share in enumerate((0.1, 0.3, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0), start=1):
        found += engine.process(_event({"at": second, "action": "network-connection", "phase": "progress",
                                        "address": "203.0.113.5", "port": 443, "bytes_sent": int(share * (8 << 20)),
                                        "process": process}))
    assert all(isinstance(a.evidence, EgressBudgetEvidence) for a in found)
    assert [(a.evidence.progress, a.evidence.updates) for a in found] == [(0.55, 0), (0.8, 1), (1.0, 2)]
    assert {a.evidence.incident for a in found} == {found[0].id}
    assert found[1].evidence.events == 4 and "6710886 of 8388608 model bytes sent" in found[1].message
