"""The main window: a state banner, then Overview, Alerts (with detail), Models, Access, Audit and Sync tabs.

A refused open of the user's own program (access-denied / access-would-deny) is told at once through the
tray (gui/access_watch.py), with a way to request access (gui/access_request.py)."""

from __future__ import annotations

import os
import pwd
import time

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMainWindow, QTabWidget, QVBoxLayout, QWidget

from weightwarden.agent.config import Config
from weightwarden.agent.store.review_queries import AlertFilter
from weightwarden.gui.access_request import (
    ACCESS_RULES,
    Refusal,
    RequestAccessDialog,
    current_user,
    notification_text,
)
from weightwarden.gui.access_watch import AccessWatch
from weightwarden.gui.central_source import CentralSource
from weightwarden.gui.export import export_csv, export_incident, export_json
from weightwarden.gui.fleet_window import FleetWindow
from weightwarden.gui.models.alerts import AlertsTableModel
from weightwarden.gui.rule_catalog import rules_in_effect
from weightwarden.gui.source import AgentStatus, DataSource
from weightwarden.gui.tray import Tray
from weightwarden.gui.views.access_view import AccessView
from weightwarden.gui.views.alerts_view import AlertsView
from weightwarden.gui.views.audit_view import AuditView
from weightwarden.gui.views.models_view import ModelsView
from weightwarden.gui.views.my_alerts_view import MyAlertsView
from weightwarden.gui.views.overview_view import OverviewView
from weightwarden.gui.views.sync_view import SyncView
from weightwarden.gui.widgets import Banner

VIEWS = ("overview", "alerts", "models", "access", "audit", "sync")
MINE_POLL_MS = 5000  # a limited user's own alerts (and refused opens) are asked of the agent this often
OVERVIEW_REFRESH_SECONDS = 30.0  # its aggregates cost up to a second on a million alerts
FLEET_URL_SETTING = "fleet/central_url"  # the app's own settings (QSettings): the last fleet view opened


class MainWindow(QMainWindow):
    def __init__(self, database_path: str, *, control_path: str | None = None, notify_severity: int = 7,
                 config: Config | None = None, poll_ms: int = 500, tray: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("Weightwarden")
        self.resize(1280, 800)
        self.config = config
        self.fleet_windows: list[FleetWindow] = []
        self.menuBar().addMenu("&View").addAction("&Fleet view…", self.ask_fleet_view)
        self.source = DataSource(database_path, control_path, poll_ms=poll_ms, rules=rules_in_effect(config))
        central = QWidget()
        central.setObjectName("page")
        layout = QVBoxLayout(central)
        self.banner = Banner()
        layout.addWidget(self.banner)
        self.tabs = QTabWidget()
        self.overview = OverviewView(self.source)
        self.alerts = AlertsView(self.source)
        self.models = ModelsView(self.source)
        self.sync = SyncView(self.source, config)
        self.access = AccessView(self.source)  # requests and grants, through the agent (anyone)
        self.audit = AuditView(self.source)
        self.mine = MyAlertsView(self.source)  # only for users the database is closed to (limited view)
        for view, title in ((self.overview, "Overview"), (self.alerts, "Alerts"), (self.models, "Models"),
                            (self.access, "Access"), (self.audit, "Audit"), (self.sync, "Central sync"),
                            (self.mine, "Your alerts")):
            self.tabs.addTab(view, title)
        self._limited = False
        self.tabs.setCurrentWidget(self.alerts)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage(database_path)

        self.tray = Tray(notify_severity) if tray else None
        if self.tray is not None:
            self.tray.openRequested.connect(self.bring_to_front)
            self.tray.quitRequested.connect(self.close)
        self._notify_sequence = self.source.review.max_sequence() if self.source.review else 0
        self.access_watch = AccessWatch(current_user())
        if self.source.review is not None:
            self.access_watch.from_store(self.source.review)  # what is there already is not news
        self.access_watch.refused.connect(self._access_refused)
        self.mine.loaded.connect(self.access_watch.from_mine)
        self.request_dialog: RequestAccessDialog | None = None
        if self.tray is not None:
            self.tray.requestAccess.connect(self.request_access)
        self.alerts.detail.requestAccess.connect(self.request_access)
        self.access.requestAccess.connect(self.request_access)
        self._mine_timer = QTimer(self)
        self._mine_timer.setInterval(MINE_POLL_MS)
        self._mine_timer.timeout.connect(self._poll_mine)
        self._mine_timer.start()
        self._overview_at = time.monotonic()
        self.source.changed.connect(self._database_changed)
        self.source.opened.connect(self._database_opened)
        self.source.agentChanged.connect(self._agent_changed)
        self.tabs.currentChanged.connect(lambda _i: self._refresh_visible())
        self.alerts.exportRequested.connect(self.export_alerts)
        self.alerts.detail.exportRequested.connect(self.export_incident)
        self._update_banner()
        self.source.start()

    # ------------------------------------------------------------------ state

    def _update_banner(self) -> None:
        self._show_limited(self.source.store is None and self.source.denied)
        agent = self.source.agent
        if self.source.store is None:
            error = self.source.error
            if self.source.denied:
                reach = ("The agent shows you the alerts about your own processes and takes your justifications."
                         if agent.reachable else "The agent is not reachable either.")
                self.banner.show_state("warn", f"Limited view: the alert database ({self.source.database_path}) is "
                                               "readable by root and the weightwarden-admin group only, and you are "
                                               f"{_user()}. Your security team reviews the alerts. {reach}")
                return
            if "no database yet" in error:
                text = (f"No database yet at {self.source.database_path}. Start the agent "
                        "(weightwarden agent) to create it; this window updates when it appears.")
            elif "older than this version" in error:
                text = (f"The database at {self.source.database_path} has an older schema. Start the agent "
                        "once to migrate it; this window updates when it is ready.")
            else:
                text = f"Cannot read alerts: {error}"
            self.banner.show_state("error", text)
        elif not agent.reachable:
            self.banner.show_state("warn", "The agent is not running: this is a read-only view. Justifications "
                                           "and status changes need the agent (weightwarden agent).")
        else:
            info = agent.info or {}
            role = "an admin" if agent.admin else "not an admin (you can add justifications)"
            self.banner.show_state("ok", f"Agent running ({info.get('mode', '?')} mode, pid {info.get('pid', '?')})."
                                         f" You are {agent.user}, {role}.")

    def _show_limited(self, limited: bool) -> None:
        """A user outside the admin group gets the "Your alerts" tab instead of the database's views."""
        index = self.tabs.indexOf(self.mine)
        for view in (self.overview, self.alerts, self.models, self.audit, self.sync):
            self.tabs.setTabVisible(self.tabs.indexOf(view), not limited)
        self.tabs.setTabVisible(index, limited)
        if limited and not self._limited:
            self.tabs.setCurrentIndex(index)
        if limited and self.source.agent.reachable:
            self.mine.refresh()
        elif limited:
            self.mine.summary.setText("Your alerts come from the agent, which is not running now.")
        self._limited = limited

    def _agent_changed(self, _status: AgentStatus) -> None:
        self._update_banner()

    def _database_opened(self) -> None:
        self._update_banner()
        self._notify_sequence = self.source.review.max_sequence() if self.source.review else 0
        if self.source.review is not None:  # the first look sets what is not news; later ones tell what came
            self.access_watch.from_store(self.source.review)
        self.alerts.reload()
        self._refresh_visible()

    def _database_changed(self) -> None:
        if self.source.store is None:  # it vanished
            self._update_banner()
            return
        self.alerts.refresh_live()
        self._notify()
        review = self.source.review
        if review is not None:
            self.access_watch.from_store(review)
        if time.monotonic() - self._overview_at > OVERVIEW_REFRESH_SECONDS:
            self._refresh_visible()

    def _notify(self) -> None:
        review = self.source.review
        if review is None or self.tray is None:
            return
        new = review.alerts_after(self._notify_sequence, AlertFilter(min_severity=self.tray.notify_severity),
                                  limit=100)
        self._notify_sequence = max([self._notify_sequence, review.max_sequence()])
        me = current_user()  # a refused open of the user's own program is told by the access watch, not twice
        new = [a for a in new if not (a.rule in ACCESS_RULES and (a.record.get("process") or {}).get("user") == me)]
        if new:
            self.tray.new_alerts(new)

    def _refresh_visible(self) -> None:
        current = self.tabs.currentWidget()
        if current is self.overview:
            self.overview.set_sync_text(self.sync.summary())
            self.overview.refresh()
            self._overview_at = time.monotonic()
        elif current is self.models:
            self.models.refresh()
        elif current is self.sync:
            self.sync.refresh()
        elif current is self.access:
            self.access.refresh()
        elif current is self.audit and self.audit.report is None:  # then on demand: it stats every file
            self.audit.refresh()

    def show_view(self, name: str) -> None:
        """Bring a view forward: one of VIEWS, or detail (the first alert opened)."""
        if name == "detail":
            self.tabs.setCurrentWidget(self.alerts)
            if self.alerts.model.rowCount():
                self.alerts.select_row(0)
            self.alerts.splitter.setSizes([560, 720])
            return
        self.tabs.setCurrentWidget({"overview": self.overview, "alerts": self.alerts, "models": self.models,
                                    "access": self.access, "audit": self.audit, "sync": self.sync}[name])

    # ------------------------------------------------------------------ access

    def _poll_mine(self) -> None:
        """A limited user's app cannot read the store: their own alerts come from the agent."""
        if self._limited and self.source.agent.reachable:
            reply = self.source.act({"op": "my-alerts"})  # not the view's refresh: it keeps its selection
            if reply.get("ok"):
                self.access_watch.from_mine(list(reply.get("alerts") or []))

    def _access_refused(self, refusal: Refusal) -> None:
        self.statusBar().showMessage(notification_text(refusal)[0], 15_000)
        if self.tray is not None:
            self.tray.access_refused(refusal)

    def request_access(self, refusal: Refusal | None) -> None:
        """The request dialog, filled from the refused open when there is one; the Access view shows the result."""
        dialog = RequestAccessDialog(self.source, refusal, self)
        self.request_dialog = dialog
        dialog.accepted.connect(lambda: self._request_sent(dialog))
        dialog.open()

    def _request_sent(self, dialog: RequestAccessDialog) -> None:
        made = (dialog.reply or {}).get("request") or {}
        self.statusBar().showMessage(f"Access request {made.get('id', '')} sent for {made.get('model', '')}; "
                                     "an admin reviews it.", 10_000)
        self.access.refresh()

    # ------------------------------------------------------------------ fleet

    def ask_fleet_view(self) -> None:
        """Ask for the central store's URL (last one, else [gui] central_url) and open the fleet view there."""
        url, ok = QInputDialog.getText(self, "Fleet view", "Central OpenSearch/Elasticsearch URL "
                                       "(the index the agents forward to):", QLineEdit.EchoMode.Normal,
                                       self.fleet_url())
        if ok and url.strip():
            self.open_fleet_view(url.strip())

    def fleet_url(self) -> str:
        remembered = app_settings().value(FLEET_URL_SETTING, "")
        return str(remembered or (self.config.gui.central_url if self.config is not None else ""))

    def open_fleet_view(self, url: str) -> FleetWindow:
        """A fleet window beside this one; the URL is remembered in the app's settings."""
        app_settings().setValue(FLEET_URL_SETTING, url)
        source = CentralSource.from_config(self.config, url) if self.config is not None else CentralSource(url)
        window = FleetWindow(source)
        self.fleet_windows.append(window)
        window.show()
        return window

    def bring_to_front(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    # ------------------------------------------------------------------ export

    def export_alerts(self, kind: str) -> None:
        review = self.source.review
        if review is None or not isinstance(self.alerts.model, AlertsTableModel):
            return
        path, _ = QFileDialog.getSaveFileName(self, f"Export alerts as {kind.upper()}", f"alerts.{kind}",
                                              "CSV (*.csv)" if kind == "csv" else "JSON lines (*.json *.jsonl)")
        if not path:
            return
        write = export_csv if kind == "csv" else export_json
        count = write(review, self.alerts.model.filter, self.alerts.model.sort_order, path)
        self.statusBar().showMessage(f"Exported {count:,} alerts to {path}", 10_000)

    def export_incident(self, alert_id: str) -> None:
        review = self.source.review
        if review is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save incident report", f"incident-{alert_id[:8]}.html",
                                              "HTML (*.html);;PDF (*.pdf)")
        if path and export_incident(review, alert_id, path, self.source.rules):
            self.statusBar().showMessage(f"Incident report saved to {path}", 10_000)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.source.stop()
        for window in self.fleet_windows:
            window.close()
        if self.tray is not None and self.tray.icon is not None:
            self.tray.icon.hide()
        super().closeEvent(event)


def app_settings() -> QSettings:
    """The app's own settings (~/.config/Weightwarden/weightwarden-gui.conf): what the user chose in the app."""
    return QSettings("Weightwarden", "weightwarden-gui")


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


__all__ = ["VIEWS", "MainWindow", "Qt"]
