"""The models view's table: one row per logical model in the inventory."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from weightwarden.agent.cli.output import human_size
from weightwarden.gui.models.alerts import local_time
from weightwarden.gui.models.rows import RowTableModel

COLUMNS = (("Model", "model"), ("Formats", "formats"), ("Size", "size"), ("Files", "files"),
           ("Location", "location"), ("Public repo", "public_repo"), ("Copies seen", "copies"),
           ("Last activity", "last_activity"), ("Canary", "canary"))


class ModelInventoryModel(RowTableModel):
    columns = COLUMNS

    def cell(self, row: dict[str, Any], key: str, value: Any, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "formats":
                return ", ".join(value or [])
            if key == "size":
                return human_size(int(value or 0))
            if key == "last_activity":
                return local_time(value) if value else ""
            if key == "public_repo":
                return value or "none known"
            if key == "canary":
                return "yes" if value else "no"
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole and key in ("size", "files", "copies"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and key == "copies" and value:
            return QColor("#c62828")
        if role == Qt.ItemDataRole.ToolTipRole and key == "location":
            return str(value)
        if role == Qt.ItemDataRole.ToolTipRole and key == "public_repo":
            return ("Public weights: the Hugging Face cache names this repo." if value else
                    "No public origin known: treat these weights as private.")
        return None
