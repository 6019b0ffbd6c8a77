"""The app driven like a person would: filter, select, read the evidence, justify through a real agent."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tests.gui.helpers import make_alert, running_agent
from weightwarden.agent.store import Store


def test_filter_select_and_justify_through_a_running_agent(qtbot: QtBot, tmp_path: Path, database: Path,
                                                           window_factory) -> None:  # type: ignore[no-untyped-def]
    with running_agent(tmp_path):
        window = window_factory(database, poll_ms=50)
        view = window.alerts
        assert window.source.agent.reachable and window.banner.level == "ok"

        qtbot.keyClicks(view.search, "firefox")
        qtbot.waitUntil(lambda: view.model.filter.text == "firefox", timeout=5000)
        assert 0 < view.model.rowCount() < 30
        assert all(view.model.row(i).record["process"]["name"] == "firefox" for i in range(view.model.rowCount()))

        view.table.selectRow(0)
        alert = view.model.row(0)
        assert not view.detail.isHidden() and view.detail.alert_id == alert.id
        page = view.detail.browser.toPlainText()
        for heading in ("Evidence timeline", "Process tree", "File lineage", "Fingerprints", "Egress progress",
                        "Rule: "):
            assert heading in page
        assert view.detail.justify_button.isEnabled()

        qtbot.keyClicks(view.detail.justification, "uploaded to our org's hub namespace")
        qtbot.mouseClick(view.detail.justify_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "uploaded to our org's hub namespace" in view.detail.browser.toPlainText(),
                        timeout=5000)
        assert view.detail.justification.text() == ""

        if os.geteuid() == 0:  # root is an admin: the status change comes back through the database
            qtbot.mouseClick(view.detail.status_buttons["resolve"], Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: view.model.row(0).status == "resolved", timeout=5000)
            assert not view.detail.status_buttons["resolve"].isEnabled()
    window.source.check_agent()
    qtbot.waitUntil(lambda: window.banner.level == "warn", timeout=5000)
    assert not view.detail.justify_button.isEnabled()


def test_without_an_agent_the_app_is_read_only_and_says_why(qtbot: QtBot, database: Path, window_factory) -> None:  # type: ignore[no-untyped-def]
    window = window_factory(database)
    assert window.banner.level == "warn" and "read-only" in window.banner.text()
    window.alerts.table.selectRow(0)
    detail = window.alerts.detail
    assert not detail.justify_button.isEnabled() and "not running" in detail.justify_button.toolTip()
    assert not detail.status_buttons["resolve"].isEnabled()


def test_new_alerts_appear_live_and_notify(qtbot: QtBot, tmp_path: Path, database: Path) -> None:
    from weightwarden.gui.app_window import MainWindow

    window = MainWindow(str(database), poll_ms=50, notify_severity=8)
    qtbot.addWidget(window)
    try:
        assert window.tray is not None
        before = window.alerts.model.rowCount()
        writer = Store(database)
        try:
            with qtbot.waitSignal(window.tray.notified, timeout=5000) as notified:
                stored = writer.write([make_alert(500, severity=9, minutes_ago=0)])
        finally:
            writer.close()
        assert "9 critical" in notified.args[0]
        qtbot.waitUntil(lambda: window.alerts.model.rowCount() == before + 1, timeout=5000)
        assert window.alerts.model.row(0).id == stored[0].id
    finally:
        window.source.stop()


def test_missing_database_shows_why_then_loads_when_it_appears(qtbot: QtBot, tmp_path: Path,
                                                               window_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.gui.helpers import make_database

    path = tmp_path / "later.db"
    window = window_factory(path, poll_ms=50)
    assert window.banner.level == "error" and "No database yet" in window.banner.text()
    assert window.alerts.model.rowCount() == 0
    window.overview.refresh()
    make_database(path, alerts=3)
    qtbot.waitUntil(lambda: window.alerts.model.rowCount() == 3, timeout=5000)
    assert window.banner.level == "warn"


def test_older_schema_is_explained(tmp_path: Path, window_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.gui.helpers import make_database

    path = make_database(tmp_path / "old.db", alerts=2)
    store = Store(path)
    store.db.execute("delete from _migrations where name = '0003_alert_reviews'")
    store.db.conn.commit()
    store.close()
    window = window_factory(path)
    assert window.banner.level == "error" and "older schema" in window.banner.text()


def test_overview_and_models(database: Path, window_factory) -> None:  # type: ignore[no-untyped-def]
    window = window_factory(database)
    window.show_view("overview")
    overview = window.overview
    assert overview.models.value.text() == "4"
    assert overview.open_alerts.value.text() == "30"
    assert sum(b[1] for b in overview.chart.bars) == 30
    assert "model-copy" in overview.top_rules.text()
    assert "Agent health" in overview.health.text() and "files" in overview.health.text()
    window.show_view("models")
    assert window.models.model.rowCount() == 4
    assert window.models.model.data(window.models.model.index(0, 0)) == "model-0"


def test_a_new_state_of_the_selected_incident_replaces_its_row_and_stays_selected(
        qtbot: QtBot, database: Path) -> None:
    from weightwarden.agent.events import Alert
    from weightwarden.gui.app_window import MainWindow

    window = MainWindow(str(database), poll_ms=50, notify_severity=8)
    qtbot.addWidget(window)
    try:
        view, model = window.alerts, window.alerts.model
        before = model.rowCount()
        view.select_row(3)
        listed = model.row(3)
        assert view.detail.alert_id == listed.id
        writer = Store(database)
        try:
            (stored,) = writer.write([Alert(listed.rule, listed.title, 9, "egress grew: update 1",
                                            evidence=dataclasses.replace(listed.evidence, incident=listed.incident,
                                                                         updates=1))])
        finally:
            writer.close()
        qtbot.waitUntil(lambda: model.successors.get(listed.incident or "") == stored.id, timeout=5000)
        shown = [model.row(i).id for i in range(model.rowCount())]
        assert model.rowCount() == before and stored.id in shown and listed.id not in shown
        selected = view.table.selectionModel().selectedRows()
        assert len(selected) == 1 and model.row(selected[0].row()).id == stored.id
        assert view.detail.alert_id == stored.id
    finally:
        window.source.stop()
