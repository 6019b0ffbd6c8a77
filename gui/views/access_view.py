"""Access: the pending access requests and the active time-boxed grants (docs/access.md).

Everything goes through the agent's control socket ("access-list", "access-grant", "access-refuse",
"access-revoke"): an admin sees every request and grant and may approve (for a duration), refuse (with a
note) and revoke; anyone else sees their own and may ask for access. The agent decides who is who.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from weightwarden.agent.control_access import DEFAULT_HOURS, MAX_HOURS, MAX_NOTE_CHARS
from weightwarden.gui.models.access import GrantsModel, RequestsModel
from weightwarden.gui.source import DataSource
from weightwarden.gui.widgets import row_table


def _table(model: RequestsModel | GrantsModel, widths: tuple[int, ...]) -> QTableView:
    table = row_table(model)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    for column, width in enumerate(widths):
        header.resizeSection(column, width)
    header.setStretchLastSection(True)
    return table


class AccessView(QWidget):
    requestAccess = Signal(object)  # None: the user asks for access without a refused open to start from

    def __init__(self, source: DataSource) -> None:
        super().__init__()
        self.source = source
        self.admin = False
        self.requests = RequestsModel()
        self.grants = GrantsModel()
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        top.addWidget(self.summary, 1)
        self.ask_button = QPushButton("Request access…")
        self.ask_button.clicked.connect(lambda: self.requestAccess.emit(None))
        top.addWidget(self.ask_button)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        top.addWidget(refresh)
        layout.addLayout(top)

        layout.addWidget(QLabel("<b>Pending requests</b>"))
        self.requests_table = _table(self.requests, (130, 100, 180, 220, 90))
        layout.addWidget(self.requests_table, 1)
        self.review_bar = QWidget()
        review = QHBoxLayout(self.review_bar)
        review.setContentsMargins(0, 0, 0, 0)
        self.hours = QDoubleSpinBox()
        self.hours.setRange(0.5, MAX_HOURS)
        self.hours.setDecimals(1)
        self.hours.setValue(DEFAULT_HOURS)
        self.hours.setSuffix(" h")
        self.approve_button = QPushButton("Approve")
        self.approve_button.setObjectName("primary")
        self.approve_button.clicked.connect(self.approve)
        self.note = QLineEdit()
        self.note.setMaxLength(MAX_NOTE_CHARS)
        self.note.setPlaceholderText("Note for a refusal, e.g. \"use the 8B model for this\"")
        self.refuse_button = QPushButton("Refuse")
        self.refuse_button.clicked.connect(self.refuse)
        review.addWidget(QLabel("Grant for"))
        review.addWidget(self.hours)
        review.addWidget(self.approve_button)
        review.addSpacing(24)
        review.addWidget(self.note, 1)
        review.addWidget(self.refuse_button)
        layout.addWidget(self.review_bar)

        layout.addWidget(QLabel("<b>Active grants</b>"))
        self.grants_table = _table(self.grants, (100, 180, 220, 110, 130))
        layout.addWidget(self.grants_table, 1)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        self.revoke_button = QPushButton("Revoke")
        self.revoke_button.clicked.connect(self.revoke)
        bottom.addWidget(self.revoke_button)
        layout.addLayout(bottom)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self._show_role()

    def _show_role(self) -> None:
        self.review_bar.setVisible(self.admin)
        self.revoke_button.setVisible(self.admin)

    def refresh(self) -> None:
        reply = self.source.act({"op": "access-list"})
        if not reply.get("ok"):
            self.requests.set_rows([])
            self.grants.set_rows([])
            self.summary.setText(f"Access requests cannot be shown: {reply.get('error', 'no reply')}")
            return
        self.admin = bool(reply.get("admin"))
        requests, grants = list(reply.get("requests") or []), list(reply.get("grants") or [])
        self.requests.set_rows(requests)
        self.grants.set_rows(grants)
        whose = "" if self.admin else "Your "
        self.summary.setText(f"{whose}<b>{len(requests)}</b> pending requests and <b>{len(grants)}</b> active grants."
                             + (" Select a request to approve or refuse it." if self.admin else
                                " An admin approves or refuses each request; a grant ends by itself."))
        self._show_role()

    def _selected(self, table: QTableView, model: RequestsModel | GrantsModel) -> dict[str, Any] | None:
        rows = table.selectionModel().selectedRows()
        return model.row(rows[0].row()) if rows else None

    def approve(self) -> None:
        item = self._selected(self.requests_table, self.requests)
        if item is None:
            self.message.setText("Select a request first.")
            return
        self._send({"op": "access-grant", "request": item["id"], "hours": self.hours.value()},
                   f"Approved: {item['user']} may open {item['model']} for {self.hours.value():g} h.")

    def refuse(self) -> None:
        item = self._selected(self.requests_table, self.requests)
        if item is None:
            self.message.setText("Select a request first.")
            return
        if self._send({"op": "access-refuse", "request": item["id"], "note": self.note.text().strip()},
                      f"Refused the request of {item['user']} for {item['model']}."):
            self.note.clear()

    def revoke(self) -> None:
        item = self._selected(self.grants_table, self.grants)
        if item is None:
            self.message.setText("Select a grant first.")
            return
        self._send({"op": "access-revoke", "grant": item["id"]},
                   f"Revoked: {item['user']} may no longer open {item['model']}.")

    def _send(self, payload: dict[str, Any], done: str) -> bool:
        reply = self.source.act(payload)
        self.message.setText(done if reply.get("ok") else f"Not done: {reply.get('error', 'no reply')}")
        self.refresh()
        return bool(reply.get("ok"))
