"""The app's tests: offscreen Qt (tests/conftest.py), one session QApplication (pytest-qt)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests.gui.helpers import make_database
from weightwarden.gui import style


@pytest.fixture
def database(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    return make_database(tmp_path / "data" / "weightwarden.db")


@pytest.fixture(autouse=True)
def app_style(qapp: object) -> None:
    style.apply(qapp)  # type: ignore[arg-type]


@pytest.fixture
def window_factory(qtbot: QtBot):  # type: ignore[no-untyped-def]
    from weightwarden.gui.app_window import MainWindow

    windows: list[MainWindow] = []

    def make(database: Path, **kwargs: object) -> MainWindow:
        kwargs.setdefault("tray", False)
        window = MainWindow(str(database), **kwargs)  # type: ignore[arg-type]
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.source.stop()
