"""A non-admin's own alerts as the agent serves them ("my-alerts" on the control socket)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from weightwarden.gui import severity
from weightwarden.gui.models.alerts import local_time
from weightwarden.gui.models.rows import RowTableModel


class MyAlertsModel(RowTableModel):
    columns = (("Time", "time"), ("Severity", "severity"), ("Rule", "rule"), ("Alert", "title"),
               ("Model", "model"), ("Status", "status"))

    def cell(self, row: dict[str, Any], key: str, value: Any, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "time":
                return local_time(str(value))
            if key == "severity":
                return severity.band(int(value))[0]
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.DecorationRole and key == "severity":
            return severity.icon(int(value))
        if role == Qt.ItemDataRole.ForegroundRole and key == "status":
            return QColor(severity.STATUS_COLOURS.get(str(value), "#333333"))
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(row.get("message", ""))
        return None
