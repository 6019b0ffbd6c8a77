"""Tray icon and desktop notifications for new alerts at or above the configured severity, and the
"start minimised at login" switch (gui/autostart.py). A refused open of the user's own program is always
told (whatever its severity), with a way to request access (gui/access_request.py)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from weightwarden.agent.store.review_queries import AlertRow
from weightwarden.gui import autostart, severity
from weightwarden.gui.access_request import Refusal
from weightwarden.gui.access_request import notification_text as refusal_text


def notification_text(alerts: list[AlertRow]) -> tuple[str, str]:
    """(title, body) for one notification covering the alerts (newest first)."""
    top = max(alerts, key=lambda a: (a.severity, a.sequence))
    if len(alerts) == 1:
        return f"Weightwarden: {severity.label(top.severity)} alert", f"{top.title}\n{top.record.get('message', '')}"
    return (f"Weightwarden: {len(alerts)} new alerts",
            f"Most severe: {top.title} ({severity.label(top.severity)})")


class Tray(QObject):
    """Notifies about new alerts; `notified` carries what was shown (tests and headless runs)."""

    notified = Signal(str, str)
    openRequested = Signal()
    quitRequested = Signal()
    requestAccess = Signal(object)  # the Refusal the user wants access after (message clicked, or the menu)

    def __init__(self, notify_severity: int) -> None:
        super().__init__()
        self.notify_severity = notify_severity
        self.icon: QSystemTrayIcon | None = None
        self.refusal: Refusal | None = None  # the latest refused open told, until the user acts on it
        self._message_is_refusal = False
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.icon = QSystemTrayIcon(severity.icon(7))
            self.icon.setToolTip("Weightwarden")
            menu = QMenu()
            menu.addAction("Open Weightwarden", self.openRequested.emit)
            self.request_action = menu.addAction("Request access…", self.request_access)
            self.request_action.setVisible(False)
            self.autostart = QAction("Start minimised at login", menu)
            self.autostart.setCheckable(True)
            self.autostart.setChecked(autostart.is_enabled())
            self.autostart.toggled.connect(lambda on: autostart.set_enabled(on))
            menu.addAction(self.autostart)
            menu.addSeparator()
            menu.addAction("Quit", self.quitRequested.emit)
            self._menu = menu
            self.icon.setContextMenu(menu)
            self.icon.activated.connect(lambda _reason: self.openRequested.emit())
            self.icon.messageClicked.connect(self._message_clicked)
            self.icon.show()

    def new_alerts(self, alerts: list[AlertRow]) -> None:
        # New incidents only: a later state of one (the egress count growing) updates the list, not the user.
        loud = [a for a in alerts if a.severity >= self.notify_severity and not a.updates]
        if not loud:
            return
        title, body = notification_text(loud)
        if self.icon is not None:
            self._message_is_refusal = False
            self.icon.showMessage(title, body, severity.icon(max(a.severity for a in loud)), 10_000)
        self.notified.emit(title, body)

    def access_refused(self, refusal: Refusal) -> None:
        self.refusal = refusal
        title, body = refusal_text(refusal)
        if self.icon is not None:
            self._message_is_refusal = True
            self.icon.showMessage(title, body, severity.icon(6 if refusal.enforced else 4), 15_000)
            self.request_action.setText(f"Request access to {refusal.model}…")
            self.request_action.setVisible(True)
        self.notified.emit(title, body)

    def request_access(self) -> None:
        if self.refusal is not None:
            self.requestAccess.emit(self.refusal)

    def _message_clicked(self) -> None:
        if self._message_is_refusal:
            self.request_access()
        else:
            self.openRequested.emit()
