"""The sync view's tables: one row per SIEM destination with its delivery status, and the records one
destination refused (dead letters)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from weightwarden.gui.models.alerts import local_time
from weightwarden.gui.models.rows import RowTableModel

COLUMNS = (("Destination", "destination"), ("Type", "type"), ("Set in", "configured_in"), ("Format", "format"),
           ("Target", "target"), ("Last delivered", "last_delivered_at"), ("Backlog", "backlog"),
           ("Delivered", "delivered_total"), ("Dropped", "dropped_total"), ("Refused", "dead_letters"),
           ("Last error", "last_error"))


class SyncStatusModel(RowTableModel):
    columns = COLUMNS

    def cell(self, row: dict[str, Any], key: str, value: Any, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "last_delivered_at":
                return local_time(value) if value else "never"
            if key == "last_error":
                return "disabled" if not row.get("enabled", True) else (value or "")
            if isinstance(value, int):
                return f"{value:,}"
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.ForegroundRole:
            if key == "last_error" and value:
                return QColor("#c62828")
            if key == "backlog" and isinstance(value, int) and value > 1000:
                return QColor("#ef6c00")
            if key == "dead_letters" and isinstance(value, int) and value > 0:
                return QColor("#c62828")
        if role == Qt.ItemDataRole.ToolTipRole and key in ("last_error", "target") and value:
            return str(value)
        return None


class DeadLetterModel(RowTableModel):
    """Rows as `Outbox.dead_letters` gives them: time, record_id, sequence, reason (newest first)."""

    columns = (("Time", "time"), ("Record id", "record_id"), ("Sequence", "sequence"), ("Error", "reason"))

    def cell(self, row: dict[str, Any], key: str, value: Any, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "time":
                return local_time(value) if value else ""
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.ToolTipRole and key in ("reason", "record_id") and value:
            return str(value)
        return None
