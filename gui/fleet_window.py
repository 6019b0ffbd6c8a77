"""The fleet view's window (`weightwarden-gui --central URL`): the shared Overview and Alerts views (with
the detail) over the central index of every host (gui/central_source.py), read-only.

The local window's other tabs (models, access, audit, sync) are about this machine's store and agent:
they have no meaning for the fleet and are not shown."""

from __future__ import annotations

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QTabWidget, QVBoxLayout, QWidget

from weightwarden.gui.central_source import CentralSource
from weightwarden.gui.views.alerts_view import AlertsView
from weightwarden.gui.views.overview_view import OverviewView
from weightwarden.gui.widgets import Banner

FLEET_VIEWS = ("overview", "alerts", "detail")


class FleetWindow(QMainWindow):
    def __init__(self, source: CentralSource) -> None:
        super().__init__()
        self.setWindowTitle(f"Weightwarden fleet: {source.url}")
        self.resize(1280, 800)
        self.source = source
        central = QWidget()
        central.setObjectName("page")
        layout = QVBoxLayout(central)
        self.banner = Banner()
        layout.addWidget(self.banner)
        self.tabs = QTabWidget()
        self.overview = OverviewView(source)
        self.alerts = AlertsView(source)
        self.tabs.addTab(self.overview, "Fleet overview")
        self.tabs.addTab(self.alerts, "Fleet alerts")
        self.tabs.setCurrentWidget(self.alerts)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage(f"{source.url} (index {source.central.index if source.central else '?'})")
        self.tabs.currentChanged.connect(lambda _i: self._refresh_visible())
        source.stateChanged.connect(self._update_banner)
        self._update_banner()

    def _update_banner(self) -> None:
        if self.source.error:
            self.banner.show_state("error", f"Cannot read the central store: {self.source.error}")
        else:
            self.banner.show_state("warn", f"Fleet view of {self.source.url}: the alerts of every host, read-only. "
                                           "Reviews are made in each host's app, through its agent.")

    def _refresh_visible(self) -> None:
        if self.tabs.currentWidget() is self.overview:
            self.overview.refresh()
        else:
            self.alerts.reload()

    def show_view(self, name: str) -> None:
        """Bring a view forward: overview, alerts, or detail (the first alert opened)."""
        if name == "overview":
            self.tabs.setCurrentWidget(self.overview)
            return
        self.tabs.setCurrentWidget(self.alerts)
        if name == "detail" and self.alerts.model.rowCount():
            self.alerts.select_row(0)
            self.alerts.splitter.setSizes([560, 720])

    def closeEvent(self, event: QCloseEvent) -> None:
        self.source.stop()
        super().closeEvent(event)
