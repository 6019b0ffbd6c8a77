"""Alert detail: the evidence (report.alert_html) and the actions, which go through the agent's socket.

Buttons the user cannot use are disabled with the reason in their tooltip: no agent running (the app
is read-only then), or not an admin for status changes.

One alert per incident: whichever stored state of an incident is selected, the view shows its latest
state, and the earlier states (the first alert, each update) appear in the evidence timeline.

In the fleet view (gui/central_source.py) it shows an alert of the central index, with the host it came
from, and no actions: reviews are recorded by the host's own agent.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from weightwarden.agent.store.review_queries import AlertRow
from weightwarden.gui.access_request import Refusal, current_user, refusal_of
from weightwarden.gui.central import CentralError, FleetAlert
from weightwarden.gui.central_source import READ_ONLY, CentralSource
from weightwarden.gui.report import AlertDetail, alert_html, rule_info
from weightwarden.gui.source import AgentStatus, DataSource

STATUS_ACTIONS = (("acknowledge", "Acknowledge"), ("resolve", "Resolve"), ("false-positive", "False positive"))


class AlertDetailView(QWidget):
    exportRequested = Signal(str)  # alert id
    requestAccess = Signal(object)  # the Refusal of an access-denied / access-would-deny alert

    def __init__(self, source: DataSource | CentralSource) -> None:
        super().__init__()
        self.source = source
        self.fleet = isinstance(source, CentralSource)
        self.alert_id: str | None = None
        self.host = ""  # the fleet view: the host the alert shown came from
        self.detail: AlertDetail | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        layout.addWidget(self.browser, 1)
        self.justification = QLineEdit()
        self.justification.setPlaceholderText("Justification, e.g. \"uploaded to our org's hub namespace\"")
        self.justify_button = QPushButton("Add justification")
        self.justify_button.setObjectName("primary")
        row = QHBoxLayout()
        row.addWidget(self.justification, 1)
        row.addWidget(self.justify_button)
        layout.addLayout(row)
        actions = QHBoxLayout()
        self.status_buttons: dict[str, QPushButton] = {}
        for op, text in STATUS_ACTIONS:
            button = QPushButton(text)
            button.clicked.connect(lambda _checked=False, op=op: self.act(op))
            self.status_buttons[op] = button
            actions.addWidget(button)
        actions.addStretch(1)
        self.request_button = QPushButton("Request access…")  # for a refused open (gui/access_request.py)
        self.request_button.setToolTip("Ask an admin to let this program open this model for a while.")
        self.request_button.clicked.connect(self._request_access)
        actions.addWidget(self.request_button)
        self.export_button = QPushButton("Incident report…")
        self.export_button.clicked.connect(lambda: self.alert_id and self.exportRequested.emit(self.alert_id))
        actions.addWidget(self.export_button)
        layout.addLayout(actions)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.justify_button.clicked.connect(self.justify)
        self.justification.returnPressed.connect(self.justify)
        source.agentChanged.connect(self._update_buttons)
        if self.fleet:  # read-only: the actions belong to each host's agent
            for widget in (self.justification, self.justify_button, *self.status_buttons.values(),
                           self.request_button, self.export_button):
                widget.hide()
        self.show_alert(None)

    def show_fleet_alert(self, fleet: FleetAlert | None) -> None:
        """An alert of the central index, from the document the list already holds."""
        self.alert_id = fleet.row.id if fleet is not None else None
        self.host = fleet.host if fleet is not None else ""
        self.detail = None
        if fleet is None:
            self.browser.setHtml("<p style='color:#888'>Select an alert to see its evidence.</p>")
            self.message.setText("")
            return
        alert = fleet.row
        evidence = alert.evidence
        self.detail = AlertDetail(alert, evidence, rule_info(alert.rule, evidence, self.source.rules))
        self.browser.setHtml(f"<p><b>Host:</b> {html.escape(fleet.host)}</p>" + alert_html(self.detail))
        self.message.setText(READ_ONLY)

    def show_alert(self, alert_id: str | None) -> None:
        if isinstance(self.source, CentralSource):
            if alert_id is None:
                self.show_fleet_alert(None)
            else:  # asked of the store by id: shown when it answers
                wanted = alert_id
                self.source.ask(lambda central: central.alert(wanted), self._fleet_answer, self._fleet_failed)
            return
        self.alert_id = alert_id
        review = self.source.review
        self.detail = None
        if review is not None and alert_id:
            states = review.incident(alert_id)
            self.alert_id = alert_id = states[-1].id if states else alert_id
            self.detail = AlertDetail.load(review, alert_id, self.source.rules)
            if self.detail is not None:
                self.detail.events.extend(_earlier_states(states[:-1]))
        if self.detail is None:
            self.browser.setHtml("<p style='color:#888'>Select an alert to see its evidence.</p>")
        else:
            scroll = self.browser.verticalScrollBar().value()
            self.browser.setHtml(alert_html(self.detail))
            self.browser.verticalScrollBar().setValue(scroll)
        self._update_buttons(self.source.agent)

    def _fleet_answer(self, fleet: FleetAlert | None) -> None:
        self.show_fleet_alert(fleet)
        if fleet is None:
            self.message.setText("That alert is not in the central index.")

    def _fleet_failed(self, error: CentralError) -> None:
        self.message.setText(f"Cannot read the alert: {error}")

    def refresh(self) -> None:
        if self.fleet:
            return  # a document in the central index does not change
        if self.alert_id is not None:
            self.show_alert(self.alert_id)

    def _update_buttons(self, agent: AgentStatus) -> None:
        has_alert = self.detail is not None
        if not agent.reachable:
            reason = "The agent is not running: the app is read-only."
        elif not has_alert:
            reason = "Select an alert first."
        else:
            reason = ""
        self.justify_button.setEnabled(not reason)
        self.justification.setEnabled(not reason)
        self.justify_button.setToolTip(reason or "Recorded by the agent with your user name.")
        admin_reason = reason or ("" if agent.admin else
                                  f"Only an admin (root or the admin group) may change an alert's status; "
                                  f"you are {agent.user or 'not an admin'}.")
        for op, button in self.status_buttons.items():
            current = self.detail.alert.status if self.detail else ""
            same = {"acknowledge": "acknowledged", "resolve": "resolved"}.get(op, op) == current
            button.setEnabled(not admin_reason and not same)
            button.setToolTip(admin_reason or ("already so" if same else f"Mark this alert {op}."))
        self.export_button.setEnabled(has_alert)
        refusal = self._refusal()
        self.request_button.setVisible(refusal is not None)
        self.request_button.setEnabled(refusal is not None and agent.reachable)

    def _refusal(self) -> Refusal | None:
        """The refused open shown, when it was the app user's own (a request is always for oneself)."""
        refusal = refusal_of(self.detail.alert.record) if self.detail is not None else None
        return refusal if refusal is not None and refusal.user in ("", current_user()) else None

    def _request_access(self) -> None:
        refusal = self._refusal()
        if refusal is not None:
            self.requestAccess.emit(refusal)

    def justify(self) -> None:
        text = self.justification.text().strip()
        if not text:
            self.message.setText("Write a justification first.")
            return
        if self._send({"op": "justify", "alert_id": self.alert_id, "text": text}):
            self.justification.clear()

    def act(self, op: str) -> None:
        self._send({"op": op, "alert_id": self.alert_id, "text": self.justification.text().strip()})

    def _send(self, payload: dict[str, object]) -> bool:
        reply = self.source.act(payload)
        if reply.get("ok"):
            self.message.setText(f"Recorded: {payload['op']}.")
            self.refresh()
            return True
        self.message.setText(f"Not recorded: {reply.get('error', 'unknown error')}")
        return False


def _earlier_states(states: list[AlertRow]) -> list[dict[str, Any]]:
    """The incident's earlier stored states as timeline entries (report.timeline reads events' shape)."""
    return [{"id": row.id, "time": row.time, "sequence": row.sequence,
             "event": {"action": "alert" if index == 0 else f"update {row.updates}"},
             "message": f"{row.rule} (severity {row.severity}): {row.record.get('message', '')}"}
            for index, row in enumerate(states)]
