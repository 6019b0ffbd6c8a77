"""A table of dict rows under fixed (header, key) columns: what the models and sync tables share.

Subclasses only say how one cell looks for a role (`cell`); counting, headers and resetting live here.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex


class RowTableModel(QAbstractTableModel):
    columns: tuple[tuple[str, str], ...] = ()

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self._rows = rows or []

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self._rows

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def row(self, position: int) -> dict[str, Any]:
        return self._rows[position]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        key = self.columns[index.column()][1]
        return self.cell(row, key, row.get(key), role)

    def cell(self, row: dict[str, Any], key: str, value: Any, role: int) -> Any:
        """What the cell of `row` under column `key` shows for `role` (None: nothing)."""
        raise NotImplementedError

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.columns):
            return self.columns[section][0]
        return None
