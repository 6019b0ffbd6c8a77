"""Overview: alerts over time, top rules and processes, agent health and sync health.

In the fleet view (gui/central_source.py) the same cards and chart count the central index's alerts of
every host, from one aggregation request; top hosts stand where top processes stand locally."""

from __future__ import annotations

from datetime import timedelta

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from weightwarden.agent.activity import STATUS_KEY
from weightwarden.agent.events import utc_now
from weightwarden.agent.store.review_queries import AlertFilter
from weightwarden.gui.central import CentralError, FleetOverview
from weightwarden.gui.central_source import CentralSource
from weightwarden.gui.health import agent_health, coverage_lines, discovery_progress
from weightwarden.gui.source import DataSource
from weightwarden.gui.widgets import BarChart, Card, RankedList

DAYS = 14


class OverviewView(QWidget):
    def __init__(self, source: DataSource | CentralSource, sync_status: object = None) -> None:
        super().__init__()
        self.source = source
        layout = QVBoxLayout(self)
        cards = QHBoxLayout()
        self.alerts_24h = Card("Alerts, last 24 hours")
        self.open_alerts = Card("Needing review")
        self.models = Card("Protected models")
        self.agent = Card("Agent")
        for card in (self.alerts_24h, self.open_alerts, self.models, self.agent):
            cards.addWidget(card)
        layout.addLayout(cards)
        grid = QGridLayout()
        chart_box = QVBoxLayout()
        title = QLabel(f"Alerts per day, last {DAYS} days (orange: severity 7 and up)")
        title.setObjectName("sectionTitle")
        chart_box.addWidget(title)
        self.chart = BarChart()
        chart_box.addWidget(self.chart, 1)
        chart_widget = QWidget()
        chart_widget.setLayout(chart_box)
        grid.addWidget(chart_widget, 0, 0, 1, 2)
        self.top_rules = RankedList("Top rules (7 days)")
        self.top_processes = RankedList("Top processes (7 days)")
        grid.addWidget(self.top_rules, 1, 0)
        grid.addWidget(self.top_processes, 1, 1)
        self.health = QLabel()
        self.health.setObjectName("card")
        self.health.setWordWrap(True)
        self.health.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.health.setStyleSheet("QLabel#card { padding: 10px; }")
        grid.addWidget(self.health, 0, 2, 2, 1)
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 2)
        grid.setColumnStretch(2, 2)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        layout.addLayout(grid, 1)
        self.sync_text = ""  # filled by refresh(), only when the overview is looked at: it costs queries
        if isinstance(source, CentralSource):
            self.open_alerts.title.setText("Hosts with alerts (14 days)")
            self.models.hide()
            self.agent.title.setText("Central store")
            self.top_processes.title = "Top hosts (7 days)"

    def set_sync_text(self, text: str) -> None:
        self.sync_text = text

    def refresh(self) -> None:
        if isinstance(self.source, CentralSource):
            self.source.ask(lambda central: central.overview(utc_now(), DAYS), self._fleet, self._fleet_failed,
                            background=True)
            return
        review = self.source.review
        now = utc_now()
        agent = self.source.agent
        if review is None:
            for card in (self.alerts_24h, self.open_alerts, self.models):
                card.set("–", "no database")
            self.chart.set_bars([])
            self.top_rules.set_items([])
            self.top_processes.set_items([])
        else:
            day = review.alert_count(AlertFilter(since=now - timedelta(days=1)))
            high = review.alert_count(AlertFilter(since=now - timedelta(days=1), min_severity=7))
            self.alerts_24h.set(f"{day:,}", f"{high:,} of severity 7 and up", "#c62828" if high else None)
            open_count = review.alert_count(AlertFilter(statuses=("open",)))
            acked = review.alert_count(AlertFilter(statuses=("acknowledged",)))
            self.open_alerts.set(f"{open_count:,}", f"open; {acked:,} acknowledged")
            summaries = review.model_summaries()
            self.models.set(f"{len(summaries):,}", f"{sum(s['files'] for s in summaries):,} files")
            counts = {b: (n, h) for b, n, h in review.alert_histogram(now - timedelta(days=DAYS - 1), "day")}
            bars = []
            for offset in range(DAYS - 1, -1, -1):
                key = (now - timedelta(days=offset)).strftime("%Y-%m-%d")
                total, high_count = counts.get(key, (0, 0))
                bars.append((key[5:], total, high_count))
            self.chart.set_bars(bars)
            week = now - timedelta(days=7)
            self.top_rules.set_items(review.top_rules(week))
            self.top_processes.set_items(review.top_processes(week))
        health = agent_health(review.host_events() if review is not None else [])
        rate = review.event_count_since(now - timedelta(hours=1)) if review is not None else 0
        if agent.reachable:
            self.agent.set("running", f"{(agent.info or {}).get('mode', '')} mode, {health.coverage} coverage",
                           "#2e7d32" if health.coverage == "full" else "#ef6c00")
        else:
            self.agent.set("not running", "read-only view", "#c62828")
        lines = ["<b style='font-size:14px'>Agent health</b>"]
        if health.started:
            lines.append(f"Version {health.started.get('version', '?')} on {health.started.get('host', '?')}, "
                         f"{health.started.get('mode', '?')} mode")
            privilege = "root (full coverage)" if health.coverage == "full" else "user (reduced coverage)"
            lines.append(f"Privilege: {privilege}")
        else:
            lines.append("<span style='color:#888'>the agent has not started on this database yet</span>")
        for name, (status, message) in sorted(health.sensors.items()):
            colour = "#2e7d32" if status == "running" else "#ef6c00"
            lines.append(f"<span style='color:{colour}'>●</span> <b>{name}</b>: {status}"
                         + (f"<br><span style='color:#777'>{message}</span>" if status != "running" else ""))
        status_json = self.source.store.state(STATUS_KEY) if self.source.store is not None else None
        coverage = coverage_lines(status_json)
        if coverage:
            lines.append("<br><b style='font-size:14px'>Coverage</b>")
            lines += coverage
        discovery = discovery_progress(status_json)
        if discovery is not None:
            lines.append("<br><b style='font-size:14px'>Discovery</b>")
            lines += discovery.lines()
        lines.append(f"Event rate: {rate / 60:.1f}/min over the last hour")
        lines.append(f"Dropped or overflowed: {health.drops}")
        lines.append("<br><b style='font-size:14px'>Central sync</b>")
        lines.append(self.sync_text or "<span style='color:#888'>no forwarding destinations configured</span>")
        self.health.setText("<br>".join(lines))

    def _fleet(self, overview: FleetOverview) -> None:
        self.alerts_24h.set(f"{overview.day:,}", f"{overview.day_high:,} of severity 7 and up",
                            "#c62828" if overview.day_high else None)
        self.open_alerts.set(f"{overview.hosts:,}", "hosts that sent alerts")
        self.agent.set("reachable", self.source.database_path, "#2e7d32")
        self.chart.set_bars([(day[5:], total, high) for day, total, high in overview.per_day])
        self.top_rules.set_items(overview.top_rules)
        self.top_processes.set_items(overview.top_hosts)
        self.health.setText("<b style='font-size:14px'>Fleet view</b><br>Read-only: the alerts every agent "
                            f"forwarded to {self.source.database_path}. Reviews are made in each host's app.")

    def _fleet_failed(self, error: CentralError) -> None:
        self.agent.set("no answer", error.kind, "#c62828")
        self.health.setText(f"<b style='font-size:14px'>Fleet view</b><br>Cannot read the central store: {error}")
