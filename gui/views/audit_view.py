"""Audit: who can read each protected model file, where it is, its copies and its access policy.

The report is agent/audit's (the same as `weightwarden audit`), made on demand from the store the app
reads; high-risk rows (world-readable, world-writable, on removable media) are highlighted. Export writes
the same HTML page as `--html`, or its PDF rendering.

The audit stats every protected file and reads their ACLs, which takes long on a slow or dead share, so it
runs on a thread of its own (with its own read-only connection to the store: a connection is used only
by the thread that made it) and the window stays responsive; the report is shown when it arrives.
"""

from __future__ import annotations

import os
import threading

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QHeaderView, QLabel, QPushButton, QVBoxLayout, QWidget

from weightwarden.agent.audit import render
from weightwarden.agent.audit.from_store import audit_store
from weightwarden.agent.audit.report import AuditReport
from weightwarden.agent.store import Store, StoreError
from weightwarden.gui.models.audit import AuditModel, audit_rows
from weightwarden.gui.source import DataSource
from weightwarden.gui.widgets import row_table


class _Arrival(QObject):
    """Carries the audit thread's outcome to the window's thread (a queued signal)."""

    finished = Signal(object)  # AuditReport, or the text of why there is none


def _audit(database_path: str, data_dir: str, policy_paths: list[str] | None) -> AuditReport | str:
    try:
        store = Store(database_path, read_only=True)
    except (StoreError, OSError) as error:
        return f"The audit could not read the agent's inventory: {error}"
    try:
        return audit_store(store, data_dir, policy_paths)
    except (StoreError, OSError) as error:
        return f"The audit failed: {error}"
    finally:
        store.close()


class AuditView(QWidget):
    def __init__(self, source: DataSource, policy_paths: list[str] | None = None) -> None:
        super().__init__()
        self.source = source
        self.policy_paths = policy_paths  # None: the installed access policy, as the agent loads it
        self.report: AuditReport | None = None
        self.model = AuditModel()
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.summary = QLabel("Run the audit to see who can read each protected model file.")
        self.summary.setWordWrap(True)
        top.addWidget(self.summary, 1)
        self.run_button = QPushButton("Run audit")
        self.run_button.setObjectName("primary")
        self.run_button.clicked.connect(self.refresh)
        top.addWidget(self.run_button)
        self.export_button = QPushButton("Export HTML/PDF…")
        self.export_button.clicked.connect(self.export_dialog)
        top.addWidget(self.export_button)
        layout.addLayout(top)
        self.table = row_table(self.model)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((300, 110, 80, 60, 130, 170, 170, 80)):
            header.resizeSection(column, width)
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.export_button.setEnabled(False)
        self._arrival = _Arrival()
        self._arrival.finished.connect(self._show)
        self.running = False

    def refresh(self) -> None:
        """Start an audit (unless one is running); its report is shown when it arrives."""
        if self.running:
            return
        if self.source.store is None:
            self.summary.setText("The audit reads the agent's inventory, which this app cannot open now.")
            return
        self.running = True
        self.run_button.setEnabled(False)
        self.summary.setText("Auditing the protected model files…")
        database = os.path.abspath(self.source.database_path)
        arrival, policy_paths = self._arrival, self.policy_paths
        # a daemon thread: an audit stuck on a dead share must not keep the app from quitting
        threading.Thread(target=lambda: arrival.finished.emit(_audit(database, os.path.dirname(database),
                                                                     policy_paths)),
                         name="ww-audit", daemon=True).start()

    def _show(self, outcome: AuditReport | str) -> None:
        self.running = False
        self.run_button.setEnabled(True)
        if isinstance(outcome, str):
            self.summary.setText(outcome)
            return
        self.report = outcome
        self.model.set_rows(audit_rows(outcome))
        highlighted = " (highlighted)" if outcome.summary["high_risk"] else ""
        self.summary.setText(render.summary_line(outcome) + highlighted)
        self.export_button.setEnabled(True)

    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the audit", "weightwarden-audit.html",
                                              "HTML (*.html);;PDF (*.pdf)")
        if path:
            self.export(path)

    def export(self, path: str) -> bool:
        """Write the report shown as HTML, or as PDF when `path` ends in .pdf."""
        if self.report is None:
            self.message.setText("Run the audit first.")
            return False
        page = render.to_html(self.report)
        try:
            if path.lower().endswith(".pdf"):
                render.write_pdf(page, path)
                with open(path, "rb") as written:
                    if written.read(5) != b"%PDF-":  # Qt reports no error for a PDF it could not write
                        raise OSError("the PDF was not written")
            else:
                with open(path, "w", encoding="utf-8") as out:
                    out.write(page)
        except OSError as error:
            self.message.setText(f"Not exported: {path}: {error.strerror or error}")
            return False
        self.message.setText(f"Audit exported to {path}")
        return True
