"""Alerts: filter bar, the windowed table, and the selected alert's detail beside it.

The same view shows the fleet (gui/central_source.py): then the list is the central index's
(gui/models/fleet_alerts.py) with a host column and a host filter, and no review status (read-only)."""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from weightwarden.agent.events import utc_now
from weightwarden.agent.store.review_queries import STATUSES, AlertFilter
from weightwarden.gui.central import CentralStore
from weightwarden.gui.central_source import CentralSource
from weightwarden.gui.models.alerts import AlertsTableModel, since_for
from weightwarden.gui.models.fleet_alerts import FleetAlertsModel
from weightwarden.gui.source import DataSource
from weightwarden.gui.views.detail_view import AlertDetailView
from weightwarden.gui.widgets import row_table

SEVERITY_CHOICES = (("Any severity", 0), ("Medium and up (4+)", 4), ("High and up (7+)", 7), ("Critical (9+)", 9))
TIME_CHOICES = (("All time", ""), ("Last hour", "1h"), ("Last 24 hours", "24h"), ("Last 7 days", "7d"),
                ("Last 30 days", "30d"))


class AlertsView(QWidget):
    exportRequested = Signal(str)  # "csv" or "json": the filtered alerts

    def __init__(self, source: DataSource | CentralSource) -> None:
        super().__init__()
        self.source = source
        self.fleet = isinstance(source, CentralSource)
        self.model: AlertsTableModel | FleetAlertsModel = \
            FleetAlertsModel(source) if isinstance(source, CentralSource) else AlertsTableModel(source.review)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search alerts: path, model, process, rule…")
        self.search.setClearButtonEnabled(True)
        self.severity = QComboBox()
        for text, value in SEVERITY_CHOICES:
            self.severity.addItem(text, value)
        self.status = QComboBox()
        self.status.addItem("Any status", "")
        self.status.addItem("Needs review (open, acknowledged)", "open,acknowledged")
        for status in STATUSES:
            self.status.addItem(status.capitalize().replace("-", " "), status)
        self.rule = QComboBox()
        self.rule.addItem("Any rule", "")
        self.range = QComboBox()
        for text, span in TIME_CHOICES:
            self.range.addItem(text, span)
        self.host = QComboBox()  # the fleet's hosts (fleet view only)
        self.host.addItem("Any host", "")
        bar.addWidget(self.search, 3)
        for combo in (self.host, self.severity, self.status, self.rule, self.range):
            bar.addWidget(combo, 1)
        self.host.setVisible(self.fleet)
        self.status.setVisible(not self.fleet)  # review status lives on each host, not in the central index
        layout.addLayout(bar)
        info = QHBoxLayout()
        self.count = QLabel()
        info.addWidget(self.count, 1)
        for kind in ("csv", "json"):
            button = QPushButton(f"Export {kind.upper()}…")
            button.clicked.connect(lambda _checked=False, kind=kind: self.exportRequested.emit(kind))
            button.setVisible(not self.fleet)
            info.addWidget(button)
        layout.addLayout(info)
        self.error = QLabel()  # the fleet view's store errors (down, 401, no index): said here, not a hang
        self.error.setObjectName("banner")
        self.error.setProperty("level", "error")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)

        self.table = row_table(self.model)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.DescendingOrder)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        widths = (150, 140, 100, 130, 150, 150, 260) if self.fleet else (150, 100, 130, 150, 150, 260, 110)
        for column, width in enumerate(widths):
            header.resizeSection(column, width)
        header.setStretchLastSection(True)
        header.sortIndicatorChanged.connect(self._sort_changed)
        self.detail = AlertDetailView(source)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.detail.hide()  # shown once an alert is selected, so the table has the width until then
        layout.addWidget(self.splitter, 1)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.apply_filter)
        self.search.textChanged.connect(lambda _text: self._debounce.start())
        for combo in (self.host, self.severity, self.status, self.rule, self.range):
            combo.currentIndexChanged.connect(lambda _i: self.apply_filter())
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self._incident_shown: str | None = None
        self.model.modelAboutToBeReset.connect(self._remember_incident)
        self.model.modelReset.connect(self._update_count)
        self.model.modelReset.connect(self._follow_incident)
        self.model.rowsInserted.connect(lambda *_: self._update_count())
        if isinstance(self.model, FleetAlertsModel):
            self.model.loaded.connect(self._fleet_answered)
            self.model.failed.connect(self._fleet_answered)
        self.reload()

    def current_filter(self) -> AlertFilter:
        statuses = tuple(s for s in str(self.status.currentData() or "").split(",") if s)
        return AlertFilter(min_severity=int(self.severity.currentData() or 0), statuses=statuses,
                           rule=self.rule.currentData() or None, since=since_for(self.range.currentData(), utc_now()),
                           text=self.search.text())

    def apply_filter(self) -> None:
        self._debounce.stop()
        selected = self.detail.alert_id
        if isinstance(self.model, FleetAlertsModel):
            self.model.host = str(self.host.currentData() or "")
        self.model.set_filter(self.current_filter())
        self._reselect(selected)

    def reload(self) -> None:
        """After the database (re)opened: rules list, rows, detail."""
        if isinstance(self.model, AlertsTableModel):
            self.model._review = self.source.review
            self._fill_rules()
        self._choices_asked = False  # the fleet's host and rule lists: asked once the first page is in
        self.apply_filter()

    def refresh_live(self) -> None:
        new = self.model.refresh_live()
        known = {self.rule.itemData(i) for i in range(self.rule.count())}
        if any(alert.rule not in known for alert in new):
            self._fill_rules()
        self.detail.refresh()

    def _fill_rules(self) -> None:
        _refill(self.rule, "Any rule", self.source.review.rules() if self.source.review else [])

    def _fill_choices(self, choices: tuple[list[str], list[str]]) -> None:
        """The fleet's hosts and rules, from aggregations (asked when the view (re)loads)."""
        hosts, rules = choices
        _refill(self.host, "Any host", hosts)
        _refill(self.rule, "Any rule", rules)

    def _fleet_answered(self, *_args: object) -> None:
        if not self._choices_asked and isinstance(self.source, CentralSource):
            # After the first page, not beside it: the aggregations must not slow the first paint down.
            self._choices_asked = True
            self.source.ask(CentralStore.choices, self._fill_choices, background=True)
        error = self.model.error if isinstance(self.model, FleetAlertsModel) else ""
        self.error.setText(f"Cannot read the fleet's alerts: {error}" if error else "")
        self.error.setVisible(bool(error))
        self.style().unpolish(self.error)
        self.style().polish(self.error)
        self._update_count()

    def _sort_changed(self, column: int, _order: Qt.SortOrder) -> None:
        if self.model.sort_column() != column:  # not sortable: keep showing the real order
            header = self.table.horizontalHeader()
            header.blockSignals(True)
            header.setSortIndicator(self.model.sort_column(), Qt.SortOrder.DescendingOrder
                                    if self.model.sort_order.descending else Qt.SortOrder.AscendingOrder)
            header.blockSignals(False)

    def _update_count(self) -> None:
        if isinstance(self.model, FleetAlertsModel):
            if self.model.loading and not self.model.rowCount():
                self.count.setText("Loading the fleet's alerts…")
            elif self.model.error and not self.model.rowCount():
                self.count.setText("No answer from the central store")
            else:
                listed = self.model.rowCount()
                more = "; scroll down for more" if listed < self.model.total else ""
                self.count.setText(f"{self.model.total_text} alerts on the fleet ({listed:,} listed{more})")
            return
        capped = " (the list holds the first ones; narrow the search to see the rest)" \
            if self.model.total_text.startswith("more") else ""
        self.count.setText(f"{self.model.total_text} alerts{capped}")

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
        if isinstance(self.model, FleetAlertsModel):  # the list holds the whole document: no second request
            self.detail.show_fleet_alert(self.model.fleet_alert(rows[0].row()) if rows else None)
        else:
            self.detail.show_alert(self.model.row(rows[0].row()).id if rows else None)
        if rows and self.detail.isHidden():
            self.detail.show()
            self.splitter.setSizes([self.width() * 9 // 20, self.width() * 11 // 20])

    def _remember_incident(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        self._incident_shown = self.model.row(rows[0].row()).incident if rows else None

    def _follow_incident(self) -> None:
        """The selected incident got a new state (the model re-read the list): select its newest row."""
        successor = self.model.successors.get(self._incident_shown or "")
        if successor is not None:
            self._reselect(successor)

    def select_row(self, position: int) -> None:
        self.table.selectRow(position)

    def _reselect(self, alert_id: str | None) -> None:
        position = self.model.position_of(alert_id) if alert_id else None
        if position is not None:
            self.table.selectRow(position)
        else:
            self.detail.show_alert(None)


def _refill(combo: QComboBox, anything: str, values: list[str]) -> None:
    """A filter combo's choices replaced, keeping the current one, without announcing a change."""
    current = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    combo.addItem(anything, "")
    for value in values:
        combo.addItem(value, value)
    combo.setCurrentIndex(max(combo.findData(current), 0))
    combo.blockSignals(False)
