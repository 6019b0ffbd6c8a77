"""Your alerts: what a desktop user outside the admin group sees in system mode.

The database is closed to them (0750 root:weightwarden-admin), so the agent serves the alerts about
their own processes through the control socket (who they are comes from the kernel), and takes their
justification the same way. Status changes stay with the admins.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from weightwarden.gui.models.my_alerts import MyAlertsModel
from weightwarden.gui.source import DataSource
from weightwarden.gui.widgets import row_table


class MyAlertsView(QWidget):
    loaded = Signal(list)  # the rows the agent sent (gui/access_watch.py looks for refused opens among them)

    def __init__(self, source: DataSource) -> None:
        super().__init__()
        self.source = source
        self.model = MyAlertsModel()
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        top.addWidget(self.summary, 1)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        top.addWidget(refresh)
        layout.addLayout(top)
        self.table = row_table(self.model)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((150, 100, 130, 330, 150)):
            header.resizeSection(column, width)
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        bar = QHBoxLayout()
        self.justification = QLineEdit()
        self.justification.setPlaceholderText("Why this was expected, e.g. \"uploaded to our org's hub namespace\"")
        self.justify_button = QPushButton("Add justification")
        self.justify_button.clicked.connect(self.justify)
        bar.addWidget(self.justification, 1)
        bar.addWidget(self.justify_button)
        layout.addLayout(bar)
        self.result = QLabel()
        layout.addWidget(self.result)

    def refresh(self) -> None:
        reply = self.source.act({"op": "my-alerts"})
        if not reply.get("ok"):
            self.model.set_rows([])
            self.summary.setText(f"Your alerts cannot be shown: {reply.get('error', 'no reply')}")
            return
        alerts = list(reply.get("alerts") or [])
        self.model.set_rows(alerts)
        self.loaded.emit(alerts)
        self.summary.setText(f"<b>{len(alerts)}</b> recent alerts about your processes. Select one to add a "
                             "justification; your security team sees it with the alert.")

    def justify(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        text = self.justification.text().strip()
        if not rows or not text:
            self.result.setText("Select an alert and write a justification first.")
            return
        alert_id = self.model.row(rows[0].row())["id"]
        reply = self.source.act({"op": "justify", "alert_id": alert_id, "text": text})
        self.result.setText("Justification recorded." if reply.get("ok") else f"Not recorded: {reply.get('error')}")
        if reply.get("ok"):
            self.justification.clear()
