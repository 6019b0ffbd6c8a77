"""The Models view's serving table: one row per model server the running agent found (agent/serving)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from weightwarden.agent.cli.output import human_size
from weightwarden.agent.serving.section import ServerRow
from weightwarden.gui.models.rows import RowTableModel

COLUMNS = (("Model", "models"), ("Server", "process"), ("Listens on", "where"), ("Reach", "reach"),
           ("Protocol", "protocol"), ("Authentication", "authentication"), ("Peers", "peer_count"),
           ("Answer bytes", "answer_bytes"))


def serving_rows(servers: list[ServerRow]) -> list[dict[str, Any]]:
    """The table's rows from the status snapshot's servers."""
    return [{"models": ", ".join(s.models), "process": f"{s.process or '?'} (pid {s.pid}, {s.user or '?'})",
             "where": s.where, "reach": s.reach, "protocol": s.protocol or "not known",
             "authentication": s.authentication, "peer_count": s.peer_count, "exposed": s.exposed,
             "answer_bytes": sum(p.bytes_sent for p in s.peers), "probe": s.probe,
             "peers": "\n".join(f"{p.peer}: {p.connections} connections, {human_size(p.bytes_sent)} out"
                                for p in s.peers[:20])}
            for s in servers]


class ServingModel(RowTableModel):
    columns = COLUMNS

    def cell(self, row: dict[str, Any], key: str, value: Any, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return human_size(int(value or 0)) if key == "answer_bytes" else ("" if value is None else str(value))
        if role == Qt.ItemDataRole.ForegroundRole and key in ("reach", "authentication") and row.get("exposed"):
            return QColor("#c62828")
        if role == Qt.ItemDataRole.ToolTipRole and key == "authentication":
            return str(row.get("probe") or "")
        if role == Qt.ItemDataRole.ToolTipRole and key in ("peer_count", "answer_bytes"):
            return str(row.get("peers") or "no remote peers yet")
        if role == Qt.ItemDataRole.TextAlignmentRole and key in ("peer_count", "answer_bytes"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
