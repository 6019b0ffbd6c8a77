"""The main window, offscreen: it shows the store's alerts and survives a missing database."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from weightwarden.agent.events import Alert
from weightwarden.agent.store import Store
from weightwarden.gui.main import AlertsModel, MainWindow


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "ww.db"
    store = Store(path)
    store.write([Alert(rule_id="model-copy", title="Copy", severity=6, message=f"copy {i}", model="m")
                 for i in range(3)])
    store.close()
    return path


def test_window_lists_alerts_newest_first(qtbot: QtBot, database: Path) -> None:
    window = MainWindow(str(database))
    qtbot.addWidget(window)
    model = window.table.model()
    assert model.rowCount() == 3
    assert model.data(model.index(0, 4)) == "copy 2"
    assert model.data(model.index(0, 2)) == "model-copy"
    assert "3 alerts" in window.banner.text()


def test_window_without_database_shows_why(qtbot: QtBot, tmp_path: Path) -> None:
    window = MainWindow(str(tmp_path / "missing.db"))
    qtbot.addWidget(window)
    assert window.table.model().rowCount() == 0
    assert "no database yet" in window.banner.text()


def test_alerts_model_passes_qt_model_checks(qtmodeltester: ModelTester) -> None:
    qtmodeltester.check(AlertsModel([{"time": "t", "severity": 1, "rule": "r", "model": None, "message": "m"}]))
