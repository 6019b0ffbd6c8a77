"""The alert detail shows an incident once: its latest state, with the earlier states in the timeline."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from weightwarden.agent.events import Alert
from weightwarden.agent.store import Store
from weightwarden.gui.source import DataSource
from weightwarden.gui.views.detail_view import AlertDetailView


def test_any_state_of_an_incident_opens_its_latest_with_the_updates_in_the_timeline(qtbot: QtBot,
                                                                                     tmp_path: Path) -> None:
    first = Alert("model-egress-budget", "egress: llama", 9, "sent 52% of the model",
                  evidence={"progress": 0.52, "updates": 0})
    first = Alert(first.rule_id, first.title, 9, first.message, id=first.id,
                  evidence={**first.evidence, "incident": first.id})
    updates = [Alert(first.rule_id, first.title, 9, f"sent {share}% of the model",
                     evidence={"incident": first.id, "updates": n, "progress": share / 100})
               for n, share in ((1, 76), (2, 100))]
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
        assert "sent 100% of the model" in page.split("Evidence timeline")[0]  # the headline: the latest state
        timeline = page.split("Evidence timeline")[1]
        for text in ("sent 52% of the model", "update 1", "sent 76% of the model"):
            assert text in timeline
    finally:
        source.stop()
