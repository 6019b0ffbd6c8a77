"""Central sync: the SIEM destinations in the agent's config, their delivery status, a live test, and an
editor that produces a validated [forward.NAME] table.

Honest about what is missing: the agent reads its destinations from its config file at start and has
no way yet to change them while running, so the editor validates and copies the table instead of
pretending to apply it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from weightwarden.agent.config import Config, ForwardDestination, default_config
from weightwarden.agent.store.outbox import Outbox
from weightwarden.gui.models.sync_status import SyncStatusModel
from weightwarden.gui.source import DataSource
from weightwarden.gui.sync_config import FORM_KEYS, destination_toml, validate

HINTS = {"address": "siem.example.org", "port": "6514", "transport": "tls", "url": "https://splunk.example.org:8088",
         "token_file": "/etc/weightwarden/hec.token", "index": "weightwarden", "format": "(type's default)",
         "ca_file": "/etc/ssl/certs/siem-ca.pem", "api_key": "(Elasticsearch API key)", "verify_tls": "true",
         "path": "/var/log/weightwarden/events.jsonl", "max_bytes": "104857600"}


def target_of(destination: ForwardDestination) -> str:
    if destination.type == "syslog":
        return f"{destination.transport}://{destination.address}" + (f":{destination.port}" if destination.port else "")
    return destination.path if destination.type == "file" else destination.url


def status_rows(config: Config, database: str) -> list[dict[str, Any]]:
    """Per configured destination: what the agent's outbox cursors say (read-only)."""
    outbox = Outbox(database, read_only=True)
    try:
        rows = []
        for destination in config.forward:
            state = outbox.state(destination.name)
            rows.append({
                "destination": destination.name, "type": destination.type,
                "format": destination.format or "default", "target": target_of(destination),
                "enabled": destination.enabled, "last_delivered_at": state.delivered_at if state else None,
                "backlog": state.backlog if state else outbox.last_sequence(),
                "delivered_total": state.delivered_total if state else 0,
                "dropped_total": state.dropped_total if state else 0,
                "dead_letters": state.dead_total if state else 0,
                "last_error": state.last_error if state else None,
            })
        return rows
    finally:
        outbox.close()


class SyncView(QWidget):
    def __init__(self, source: DataSource, config: Config | None = None) -> None:
        super().__init__()
        self.source = source
        self.config = config or default_config()
        self.model = SyncStatusModel()
        layout = QVBoxLayout(self)
        where = self.config.source or "built-in defaults (no config file)"
        self.heading = QLabel(f"Destinations from <b>{where}</b>")
        layout.addWidget(self.heading)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setMaximumHeight(180)
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.test_button = QPushButton("Send test event")
        self.test_button.clicked.connect(self.send_test)
        buttons.addWidget(self.test_button)
        self.result = QLabel()
        self.result.setWordWrap(True)
        buttons.addWidget(self.result, 1)
        layout.addLayout(buttons)
        layout.addWidget(self._editor(), 1)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        source.agentChanged.connect(lambda _status: self._update_buttons())
        self.refresh()

    def _editor(self) -> QGroupBox:
        box = QGroupBox("New destination")
        outer = QHBoxLayout(box)
        form = QFormLayout()
        self.form = form
        self.name = QLineEdit()
        self.name.setPlaceholderText("splunk")
        self.kind = QComboBox()
        self.kind.addItems(list(FORM_KEYS))
        form.addRow("Name", self.name)
        form.addRow("Type", self.kind)
        self.fields: dict[str, QLineEdit] = {}
        for key in sorted({k for keys in FORM_KEYS.values() for k in keys}):
            edit = QLineEdit()
            edit.setPlaceholderText(HINTS.get(key, ""))
            self.fields[key] = edit
            form.addRow(key, edit)
        outer.addLayout(form, 1)
        right = QVBoxLayout()
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        right.addWidget(self.preview, 1)
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        right.addWidget(self.problems)
        row = QHBoxLayout()
        self.validate_button = QPushButton("Validate")
        self.validate_button.setObjectName("primary")
        self.validate_button.clicked.connect(self.validate)
        self.copy_button = QPushButton("Copy TOML")
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.preview.toPlainText()))
        self.save_button = QPushButton("Apply to agent")
        self.save_button.setEnabled(False)
        self.save_button.setToolTip("The agent cannot change its destinations while running yet: an admin adds "
                                    "this table to the config file and restarts the agent.")
        for button in (self.validate_button, self.copy_button, self.save_button):
            row.addWidget(button)
        right.addLayout(row)
        outer.addLayout(right, 1)
        self.kind.currentTextChanged.connect(lambda _t: self._kind_changed())
        self.name.textChanged.connect(lambda _t: self._preview())
        for edit in self.fields.values():
            edit.textChanged.connect(lambda _t: self._preview())
        self._kind_changed()
        return box

    def _kind_changed(self) -> None:
        wanted = FORM_KEYS[self.kind.currentText()]
        for key, edit in self.fields.items():
            edit.setEnabled(key in wanted)
            self.form.setRowVisible(edit, key in wanted)  # only what this type uses
        self._preview()

    def _preview(self) -> str:
        text = destination_toml(self.name.text().strip() or "NAME", self.kind.currentText(),
                                {k: e.text() for k, e in self.fields.items() if e.isEnabled()})
        self.preview.setPlainText(text)
        return text

    def validate(self) -> bool:
        if not self.name.text().strip():
            self.problems.setText("<span style='color:#c62828'>Give the destination a name.</span>")
            return False
        problems = validate(self._preview())
        if problems:
            items = "".join(f"<li>line {p.line}: {p.message}</li>" if p.line else f"<li>{p.message}</li>"
                            for p in problems)
            self.problems.setText(f"<span style='color:#c62828'>Not valid:</span><ul>{items}</ul>")
            return False
        self.problems.setText("<span style='color:#2e7d32'>Valid. Copy it into the agent's config file "
                              f"({self.config.source or 'see weightwarden config show'}) and restart the agent."
                              "</span>")
        return True

    def refresh(self) -> None:
        rows: list[dict[str, Any]] = []
        error = ""
        if self.config.forward and self.source.store is not None:
            try:
                rows = status_rows(self.config, self.source.database_path)
            except Exception as failure:  # an older database without outbox tables
                error = str(failure)
        self.model.set_rows(rows)
        if not self.config.forward:
            self.result.setText("No destinations configured: alerts stay on this machine. Add a [forward.NAME] "
                                "table (below) to send them to the SIEM.")
        elif error:
            self.result.setText(f"Delivery status unavailable: {error}")
        self._update_buttons()

    def summary(self) -> str:
        """One line per destination for the overview."""
        lines = []
        for row in self.model.rows:
            colour = "#c62828" if row["last_error"] else "#ef6c00" if row["backlog"] > 1000 else "#2e7d32"
            state = row["last_error"] or f"backlog {row['backlog']:,}"
            lines.append(f"<span style='color:{colour}'>●</span> <b>{row['destination']}</b> ({row['type']}): {state}")
        return "<br>".join(lines)

    def _selected(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row(rows[0].row()) if rows else None

    def _update_buttons(self) -> None:
        agent = self.source.agent
        if not self.config.forward:
            reason = "No destinations configured."
        elif not agent.reachable:
            reason = "The agent is not running: it sends the test with its own credentials."
        elif self._selected() is None:
            reason = "Select a destination."
        else:
            reason = ""
        self.test_button.setEnabled(not reason)
        self.test_button.setToolTip(reason or "The agent sends one test record and waits for confirmation.")

    def send_test(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        reply = self.source.act({"op": "sync-test", "destination": selected["destination"]})
        if reply.get("ok"):
            self.result.setText(f"<span style='color:#2e7d32'>Delivered test record {reply.get('id')} to "
                                f"{selected['destination']} in {reply.get('milliseconds')} ms.</span>")
        else:
            self.result.setText(f"<span style='color:#c62828'>Test failed: {reply.get('error')}</span>")
        self.refresh()
