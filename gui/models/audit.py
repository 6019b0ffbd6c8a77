"""The Audit view's table: one row per protected model file of an AuditReport (agent/audit/report.py)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor

from weightwarden.agent.audit.policy_column import policy_text
from weightwarden.agent.audit.report import HIGH_RISK, AuditReport
from weightwarden.gui.models.rows import RowTableModel

HIGH_RISK_BACKGROUND = "#fde2e1"


def _who(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    return str(entry["name"] if entry.get("name") is not None else entry["id"])


def audit_rows(report: AuditReport) -> list[dict[str, Any]]:
    rows = []
    for file in report.files:
        data = file.to_dict()
        data["owner_group"] = f"{_who(data['owner'])}:{_who(data['group'])}" if data["owner"] else "-"
        data["who"] = ", ".join(file.readers["names"]) + (" …" if file.readers["truncated"] else "")
        data["high_risk"] = any(flag in HIGH_RISK for flag in file.flags)
        data["policy_text"] = policy_text(file.policy)
        rows.append(data)
    return rows


class AuditModel(RowTableModel):
    columns = (("File", "path"), ("Model", "model"), ("Status", "status"), ("Mode", "mode"),
               ("Owner:group", "owner_group"), ("Flags", "flags"), ("Readers", "who"), ("Copies seen", "copies"),
               ("Access policy", "policy_text"))

    def cell(self, row: dict[str, Any], key: str, value: Any, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "flags":
                return ", ".join(value) or "-"
            if key == "copies":
                return str(len(value))
            if key == "status" and row.get("error"):
                return f"{value}: {row['error']}"
            if key == "who":
                count = row["readers"]["count"]
                return f"{count}: {value}" if count else "none"
            return "-" if value is None else str(value)
        if role == Qt.ItemDataRole.BackgroundRole and row["high_risk"]:
            return QBrush(QColor(HIGH_RISK_BACKGROUND))
        if role == Qt.ItemDataRole.ForegroundRole and key == "flags" and row["high_risk"]:
            return QBrush(QColor("#c62828"))
        if role == Qt.ItemDataRole.ToolTipRole:
            if key == "copies":
                return "\n".join(f"{c['time']} {c['destination_kind'] or ''} {c['copy_path']}" for c in value) or None
            if key in ("path", "policy_text", "who"):
                return str(value)
            if row["high_risk"]:
                return "High risk: " + ", ".join(f for f in row["flags"] if f in HIGH_RISK)
        return None
