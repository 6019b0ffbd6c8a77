"""The sync view's table: one row per configured SIEM destination with its delivery status."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from weightwarden.gui.models.alerts import local_time

Index = QModelIndex | QPersistentModelIndex
COLUMNS = (("Destination", "destination"), ("Type", "type"), ("Format", "format"), ("Target", "target"),
           ("Last delivered", "last_delivered_at"), ("Backlog", "backlog"), ("Delivered", "delivered_total"),
           ("Dropped", "dropped_total"), ("Refused", "dead_letters"), ("Last error", "last_error"))


class SyncStatusModel(QAbstractTableModel):
    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self._rows = rows or []

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def row(self, position: int) -> dict[str, Any]:
        return self._rows[position]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        key = COLUMNS[index.column()][1]
        value = row.get(key)
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
        if role == Qt.ItemDataRole.ToolTipRole and key in ("last_error", "target") and value:
            return str(value)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(COLUMNS):
            return COLUMNS[section][0]
        return None
