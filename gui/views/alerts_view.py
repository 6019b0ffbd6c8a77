"""Alerts: filter bar, the windowed table, and the selected alert's detail beside it."""

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
from weightwarden.gui.models.alerts import AlertsTableModel, since_for
from weightwarden.gui.source import DataSource
from weightwarden.gui.views.detail_view import AlertDetailView
from weightwarden.gui.widgets import row_table

SEVERITY_CHOICES = (("Any severity", 0), ("Medium and up (4+)", 4), ("High and up (7+)", 7), ("Critical (9+)", 9))
TIME_CHOICES = (("All time", ""), ("Last hour", "1h"), ("Last 24 hours", "24h"), ("Last 7 days", "7d"),
                ("Last 30 days", "30d"))


class AlertsView(QWidget):
    exportRequested = Signal(str)  # "csv" or "json": the filtered alerts

    def __init__(self, source: DataSource) -> None:
        super().__init__()
        self.source = source
        self.model = AlertsTableModel(source.review)
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
        bar.addWidget(self.search, 3)
        for combo in (self.severity, self.status, self.rule, self.range):
            bar.addWidget(combo, 1)
        layout.addLayout(bar)
        info = QHBoxLayout()
        self.count = QLabel()
        info.addWidget(self.count, 1)
        for kind in ("csv", "json"):
            button = QPushButton(f"Export {kind.upper()}…")
            button.clicked.connect(lambda _checked=False, kind=kind: self.exportRequested.emit(kind))
            info.addWidget(button)
        layout.addLayout(info)

        self.table = row_table(self.model)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.DescendingOrder)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for column, width in enumerate((150, 100, 130, 150, 150, 260, 110)):
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
        for combo in (self.severity, self.status, self.rule, self.range):
            combo.currentIndexChanged.connect(lambda _i: self.apply_filter())
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self._incident_shown: str | None = None
        self.model.modelAboutToBeReset.connect(self._remember_incident)
        self.model.modelReset.connect(self._update_count)
        self.model.modelReset.connect(self._follow_incident)
        self.model.rowsInserted.connect(lambda *_: self._update_count())
        self.reload()

    def current_filter(self) -> AlertFilter:
        statuses = tuple(s for s in str(self.status.currentData() or "").split(",") if s)
        return AlertFilter(min_severity=int(self.severity.currentData() or 0), statuses=statuses,
                           rule=self.rule.currentData() or None, since=since_for(self.range.currentData(), utc_now()),
                           text=self.search.text())

    def apply_filter(self) -> None:
        self._debounce.stop()
        selected = self.detail.alert_id
        self.model.set_filter(self.current_filter())
        self._reselect(selected)

    def reload(self) -> None:
        """After the database (re)opened: rules list, rows, detail."""
        self.model._review = self.source.review
        self._fill_rules()
        self.model.set_filter(self.current_filter())

    def refresh_live(self) -> None:
        new = self.model.refresh_live()
        known = {self.rule.itemData(i) for i in range(self.rule.count())}
        if any(alert.rule not in known for alert in new):
            self._fill_rules()
        self.detail.refresh()

    def _fill_rules(self) -> None:
        current = self.rule.currentData()
        self.rule.blockSignals(True)
        self.rule.clear()
        self.rule.addItem("Any rule", "")
        for rule in self.source.review.rules() if self.source.review else []:
            self.rule.addItem(rule, rule)
        index = self.rule.findData(current)
        self.rule.setCurrentIndex(max(index, 0))
        self.rule.blockSignals(False)

    def _sort_changed(self, column: int, _order: Qt.SortOrder) -> None:
        if self.model.sort_column() != column:  # not sortable: keep showing the real order
            header = self.table.horizontalHeader()
            header.blockSignals(True)
            header.setSortIndicator(self.model.sort_column(), Qt.SortOrder.DescendingOrder
                                    if self.model.sort_order.descending else Qt.SortOrder.AscendingOrder)
            header.blockSignals(False)

    def _update_count(self) -> None:
        capped = " (the list holds the first ones; narrow the search to see the rest)" \
            if self.model.total_text.startswith("more") else ""
        self.count.setText(f"{self.model.total_text} alerts{capped}")

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
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
