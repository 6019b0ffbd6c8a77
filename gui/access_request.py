"""A refused open of a model, as the app tells the user about it, and the dialog that asks for access.

`refusal_of` reads an `access-denied` / `access-would-deny` alert (the stored record, or a "my-alerts"
row from the agent): which model, which program, why. The dialog sends `access-request` over the control
socket (agent/control_access.py); the agent files it as the caller the kernel names, never as anyone else.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from weightwarden.agent.control_access import MAX_HOURS, MAX_JUSTIFICATION_CHARS, MAX_MODEL_CHARS, MAX_PROGRAM_CHARS
from weightwarden.gui.source import DataSource

ACCESS_RULES = ("access-denied", "access-would-deny")


@dataclass(frozen=True)
class Refusal:
    alert_id: str
    enforced: bool  # access-denied: the open failed; access-would-deny: monitor mode, it went ahead
    model: str
    program: str
    user: str
    reason: str


def refusal_of(record: dict[str, Any]) -> Refusal | None:
    """The refusal an alert record reports, or None for an alert of another rule."""
    rule = record.get("rule")
    if rule not in ACCESS_RULES:
        return None
    process = record.get("process") or {}
    paths = record.get("paths") or []
    message = str(record.get("message", ""))
    # the engine writes "<rule title>: <the event's message>"; the event's message says why
    reason = message.split(": ", 1)[1] if ": " in message else message
    return Refusal(str(record.get("id", "")), rule == "access-denied",
                   str(record.get("model") or (paths[0] if paths else "")),
                   str(process.get("executable") or process.get("name") or ""), str(process.get("user") or ""),
                   reason)


def current_user() -> str:
    """The app user's name, as the agent's records name users (process.user)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def notification_text(refusal: Refusal) -> tuple[str, str]:
    """(title, body) of the desktop notification about one refusal."""
    program = refusal.program or "a program"
    if refusal.enforced:
        title = f"Weightwarden: access to {refusal.model} refused"
        body = f"{program} was not allowed to open {refusal.model}: {refusal.reason}"
    else:
        title = f"Weightwarden: {refusal.model} opened against its access policy"
        body = (f"{program} opened {refusal.model}, which the policy does not allow (monitor mode: the open "
                f"went ahead, it is reported): {refusal.reason}")
    return title, body + "\nClick to request access."


class RequestAccessDialog(QDialog):
    """Model, program and a required justification, sent as one access request."""

    def __init__(self, source: DataSource, refusal: Refusal | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self.reply: dict[str, Any] | None = None
        self.setWindowTitle("Request access")
        layout = QVBoxLayout(self)
        intro = QLabel("An admin reviews the request; once approved, you may open the model with this program "
                       "for the time given. The request is recorded with your user name.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.model = QLineEdit(refusal.model if refusal else "")
        self.model.setMaxLength(MAX_MODEL_CHARS)
        self.program = QLineEdit(refusal.program if refusal else "")
        self.program.setMaxLength(MAX_PROGRAM_CHARS)
        self.program.setPlaceholderText("/usr/bin/python3 (empty: any program)")
        self.justification = QPlainTextEdit()
        self.justification.setPlaceholderText("Why you need it, e.g. \"evaluation for ticket ML-142\" (required)")
        self.justification.textChanged.connect(self._bound)
        self.model.textChanged.connect(self._bound)
        self.hours = QDoubleSpinBox()
        self.hours.setRange(0.5, MAX_HOURS)
        self.hours.setDecimals(1)
        self.hours.setValue(8)
        self.hours.setSuffix(" h")
        form.addRow("Model", self.model)
        form.addRow("Program", self.program)
        form.addRow("Justification", self.justification)
        form.addRow("For", self.hours)
        layout.addLayout(form)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.send_button = self.buttons.addButton("Send request", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.send)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._bound()

    def _bound(self) -> None:
        """The justification is required and at most MAX_JUSTIFICATION_CHARS (what the agent accepts)."""
        text = self.justification.toPlainText()
        if len(text) > MAX_JUSTIFICATION_CHARS:
            self.justification.setPlainText(text[:MAX_JUSTIFICATION_CHARS])
            self.justification.moveCursor(self.justification.textCursor().MoveOperation.End)
            return
        self.send_button.setEnabled(bool(text.strip()) and bool(self.model.text().strip()))

    def send(self) -> None:
        payload = {"op": "access-request", "model": self.model.text().strip(),
                   "program": self.program.text().strip() or None,
                   "justification": self.justification.toPlainText().strip(), "hours": self.hours.value()}
        if not payload["model"] or not payload["justification"]:
            self.message.setText("A model and a justification are required.")
            return
        reply = self.source.act(payload)
        if not reply.get("ok"):
            self.message.setText(f"Not sent: {reply.get('error', 'no reply')}")
            return
        self.reply = reply
        self.accept()
