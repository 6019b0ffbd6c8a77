"""The alerts table: a lazy model over the store's keyset pages, live-updated from data_version.

Only the rows scrolled into view are ever fetched (canFetchMore/fetchMore, one page at a time), so a
database with a million alerts opens as fast as one with ten. New alerts are inserted at the top (in
the default newest-first order) and status changes update their rows in place: no full reload.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont

from weightwarden.agent.events import parse_time
from weightwarden.agent.store.review_queries import COUNT_CAP, AlertFilter, AlertReview, AlertRow, AlertSort
from weightwarden.gui import severity

Index = QModelIndex | QPersistentModelIndex
PAGE = 200

# (header, sort key or None when the column is not sortable)
COLUMNS = (("Time", "time"), ("Severity", "severity"), ("Rule", "rule"), ("Model", "model"),
           ("Process", None), ("Destination", None), ("Status", "status"))
AlertRowRole = Qt.ItemDataRole.UserRole + 1
_BOLD = QFont()
_BOLD.setBold(True)


def local_time(text: str) -> str:
    try:
        return parse_time(text).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text


def process_text(record: dict[str, Any]) -> str:
    process = record.get("process") or {}
    if not process:
        return ""
    name = process.get("name") or process.get("executable") or "?"
    return f"{name} ({process['pid']})" if "pid" in process else str(name)


def destination_text(record: dict[str, Any]) -> str:
    dest = record.get("destination") or {}
    if not dest:
        return ""
    where = dest.get("address") or dest.get("path") or ""
    if dest.get("port"):
        where = f"{where}:{dest['port']}"
    return f"{dest.get('kind', '')}: {where}" if where else str(dest.get("kind", ""))


class AlertsTableModel(QAbstractTableModel):
    alertsArrived = Signal(list)  # list[AlertRow], newest first, that match the current filter

    def __init__(self, review: AlertReview | None = None, *, page_size: int = PAGE) -> None:
        super().__init__()
        self._review = review
        self._page = page_size
        self._rows: list[AlertRow] = []
        self._exhausted = True
        self._total = 0
        self._max_sequence = 0
        self._review_rowid = 0
        self.filter = AlertFilter()
        self.sort_order = AlertSort()

    # ------------------------------------------------------------------ loading

    def set_review(self, review: AlertReview | None) -> None:
        self._review = review
        self.reload()

    def set_filter(self, flt: AlertFilter) -> None:
        self.filter = flt
        self.reload()

    def reload(self) -> None:
        self.beginResetModel()
        self._rows, self._total, self._exhausted = [], 0, True
        if self._review is not None:
            self._max_sequence = self._review.max_sequence()
            self._review_rowid = self._review.last_review_rowid()
            self._rows = self._review.alert_page(self.filter, self.sort_order, limit=self._page)
            self._exhausted = len(self._rows) < self._page
            self._total = self._review.alert_count(self.filter)
        self.endResetModel()

    @property
    def total(self) -> int:
        """How many alerts match the filter (loaded or not); a free-text count stops past COUNT_CAP."""
        return self._total

    @property
    def total_text(self) -> str:
        if self.filter.text.strip() and self._total > COUNT_CAP:
            return f"more than {COUNT_CAP:,}"
        return f"{self._total:,}"

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008 - Qt's signature
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid() or self._exhausted or self._review is None or not self._rows:
            return
        last = self._rows[-1]
        page = self._review.alert_page(self.filter, self.sort_order, limit=self._page,
                                       after=(last.sort_value(self.sort_order.key), last.sequence))
        self._exhausted = len(page) < self._page
        if page:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(page) - 1)
            self._rows.extend(page)
            self.endInsertRows()

    def refresh_live(self) -> list[AlertRow]:
        """Pick up alerts and reviews committed since the last look; returns the new alerts."""
        if self._review is None:
            return []
        new = self._review.alerts_after(self._max_sequence, self.filter)
        self._max_sequence = max([self._max_sequence, *(a.sequence for a in new)])
        if new:
            self._total += len(new)
            if self.sort_order == AlertSort():
                self.beginInsertRows(QModelIndex(), 0, len(new) - 1)
                self._rows[0:0] = new
                self.endInsertRows()
            elif self._exhausted and self.sort_order == AlertSort("time", descending=False):
                self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(new) - 1)
                self._rows.extend(reversed(new))
                self.endInsertRows()
            else:  # another order: the new rows belong somewhere in the middle; load from the top again
                self.reload()
        self._review_rowid, reviews = self._review.reviews_after(self._review_rowid)
        statuses = {r["alert_id"]: r["status"] for r in reviews if r["status"]}
        if statuses:
            for position, row in enumerate(self._rows):
                if row.id in statuses and statuses[row.id] != row.status:
                    self._rows[position] = dataclasses.replace(row, status=statuses[row.id])
                    self.dataChanged.emit(self.index(position, 0), self.index(position, len(COLUMNS) - 1))
        if new:
            self.alertsArrived.emit(new)
        return new

    # ------------------------------------------------------------------ Qt model

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def row(self, position: int) -> AlertRow:
        return self._rows[position]

    def position_of(self, alert_id: str) -> int | None:
        return next((i for i, row in enumerate(self._rows) if row.id == alert_id), None)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        alert = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(alert, column)
        if role == AlertRowRole:
            return alert
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{alert.title}\n{alert.record.get('message', '')}"
        if role == Qt.ItemDataRole.DecorationRole and column == 1:
            return severity.icon(alert.severity)
        if role == Qt.ItemDataRole.ForegroundRole and column == 6:
            return QColor(severity.STATUS_COLOURS.get(alert.status, "#333333"))
        if role == Qt.ItemDataRole.FontRole and column == 6 and alert.status == "open":
            return _BOLD
        return None

    @staticmethod
    def _text(alert: AlertRow, column: int) -> str:
        if column == 0:
            return local_time(alert.time)
        if column == 1:
            return severity.band(alert.severity)[0]
        if column == 2:
            return alert.rule
        if column == 3:
            return alert.model or ""
        if column == 4:
            return process_text(alert.record)
        if column == 5:
            return destination_text(alert.record)
        return alert.status

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section][0]
            if role == Qt.ItemDataRole.ToolTipRole and COLUMNS[section][1] is None:
                return "not sortable"
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS) or COLUMNS[column][1] is None:
            return
        key = COLUMNS[column][1]
        assert key is not None
        self.sort_order = AlertSort(key, descending=order == Qt.SortOrder.DescendingOrder)
        self.reload()

    def sort_column(self) -> int:
        return next(i for i, (_, key) in enumerate(COLUMNS) if key == self.sort_order.key)


def since_for(choice: str, now: datetime) -> datetime | None:
    """The start of a named time range ("1h", "24h", "7d", "30d"; anything else: all time)."""
    from datetime import timedelta
    spans = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
             "30d": timedelta(days=30)}
    return now - spans[choice] if choice in spans else None
