"""The alert detail shows an incident once: its latest state, with the earlier states in the timeline."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from tests.gui.real_alerts import RULES
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.replay import event_from
from weightwarden.agent.detect.rules import RuleSet
from weightwarden.agent.events import Alert, Event
from weightwarden.agent.store import Store
from weightwarden.gui.source import DataSource
from weightwarden.gui.views.detail_view import AlertDetailView


def egress_incident() -> list[Alert]:
    """What the engine raises while python3 uploads a model it read: 52%, then 76% and 100% (two updates)."""
    engine = DetectionEngine(RuleSet(tuple(r for r in RULES.rules if r.id == "model-egress-budget"), ()))
    who = {"pid": 40, "name": "python3", "session": 4}
    raised: list[Alert] = []
    for raw in ({"at": 0, "action": "model-read", "path": "/m/llama.safetensors", "model": "llama",
                 "size": 10_000_000, "process": who},
                *({"at": second, "action": "network-connection", "address": "203.0.113.4", "port": 443,
                   "bytes_sent": sent, "process": who}
                  for second, sent in ((1, 5_200_000), (2, 7_600_000), (3, 10_000_000)))):
        event = event_from(raw)
        assert isinstance(event, Event)
        raised += engine.process(event)
    return raised


def test_any_state_of_an_incident_opens_its_latest_with_the_updates_in_the_timeline(qtbot: QtBot,
                                                                                     tmp_path: Path) -> None:
    first, *updates = egress_incident()
    assert [a.evidence.updates for a in (first, *updates)] == [0, 1, 2]
    store = Store(tmp_path / "weightwarden.db")
    store.write([first, *updates])
    store.close()
    source = DataSource(str(tmp_path / "weightwarden.db"))
    view = AlertDetailView(source)
    qtbot.addWidget(view)
    try:
        view.show_alert(first.id)
        assert view.alert_id == updates[-1].id
        assert view.detail is not None and view.detail.alert.updates == 2
        page = view.browser.toPlainText()
        # the headline: the latest state
        assert "(10000000 of 10000000 model bytes sent, 100%)" in page.split("Evidence timeline")[0]
        timeline = page.split("Evidence timeline")[1]
        for text in ("(5200000 of 10000000 model bytes sent, 52%)", "update 1",
                     "(7600000 of 10000000 model bytes sent, 76%)"):
            assert text in timeline
    finally:
        source.stop()
