"""The Access view's tables: pending requests and active grants, as the agent lists them ("access-list")."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt

from weightwarden.gui.models.rows import RowTableModel


def duration_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


class _AccessRowsModel(RowTableModel):
    """Requests and grants: times as local times, durations as text, no program as "any program"."""

    times: tuple[str, ...] = ()
    durations: tuple[str, ...] = ()

    def cell(self, row: dict[str, Any], key: str, value: Any, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if key in self.times:
                return _when(float(value))
            if key in self.durations:
                return duration_text(float(value))
            if key == "program":
                return value or "any program"
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.ToolTipRole and key in ("justification", "program", "model"):
            return str(value or "")
        return None


class RequestsModel(_AccessRowsModel):
    columns = (("Asked", "time"), ("User", "user"), ("Model", "model"), ("Program", "program"),
               ("For", "seconds"), ("Justification", "justification"))
    times, durations = ("time",), ("seconds",)


class GrantsModel(_AccessRowsModel):
    columns = (("User", "user"), ("Model", "model"), ("Program", "program"), ("Time left", "seconds_left"),
               ("Until", "expires_at"), ("Justification", "justification"))
    times, durations = ("expires_at",), ("seconds_left",)
