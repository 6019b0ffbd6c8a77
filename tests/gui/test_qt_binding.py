"""The Qt binding keeps Python's reference counts right (PySide6 6.12.0 under Python 3.11 did not:
every void call dropped a reference to None, and the app aborted after a few thousand repaints)."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot


def test_repaints_do_not_leak_references_to_none(qtbot: QtBot) -> None:
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.resize(50, 50)
    widget.show()
    before = sys.getrefcount(None)
    for _ in range(500):
        widget.repaint()
    assert sys.getrefcount(None) > before - 100
