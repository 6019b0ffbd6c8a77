"""The alerts table: a windowed model over the store, live-updated from data_version.

rowCount is the number of matching alerts (capped for free text), so the scrollbar spans all of them
and can be dragged anywhere; a row's page (PAGE rows) is fetched when the view first asks for it, and a
few recent pages are kept (an LRU). Every page is found by its position (review_queries.alert_page_at:
an OFFSET counted over index entries only), which costs about what continuing by keyset from the page
above costs once alerts are listed one per incident (`latest = 1` is not in the rowid order).
New alerts are inserted where they belong and status changes update their rows in place, with no reload;
only a new state of an incident already listed re-reads the list (its old row has to go).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont

from weightwarden.agent.events import parse_time
from weightwarden.agent.store.review_queries import COUNT_CAP, AlertFilter, AlertReview, AlertRow, AlertSort
from weightwarden.gui import severity

Index = QModelIndex | QPersistentModelIndex
PAGE = 200
PAGES_KEPT = 12  # a screen needs one or two pages; the rest keep scrolling back and forth cheap
LIVE_INSERTS = 200  # more new alerts than this at once in a non-time order: reset instead of placing each

# (header, sort key or None when the column is not sortable)
COLUMNS = (("Time", "time"), ("Severity", "severity"), ("Rule", "rule"), ("Model", "model"),
           ("Process", None), ("Destination", None), ("Status", "status"))
AlertRowRole = Qt.ItemDataRole.UserRole + 1
# A row `weightwarden verify` would reject (issue 15): shown, marked, and the reason in its tooltip.
REJECTED_MARK = "\u26a0 TAMPERED"
REJECTED_BACKGROUND = "#f8d7da"
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


# ----------------------------------------------------------- cells: the one formatting of both alert tables
# (this local list and the fleet's, gui/models/fleet_alerts.py), by column header

CELL_TEXTS: dict[str, Callable[[AlertRow], str]] = {
    "Time": lambda alert: local_time(alert.time),
    "Severity": lambda alert: severity.band(alert.severity)[0],
    "Rule": lambda alert: alert.rule,
    "Model": lambda alert: alert.model or "",
    "Process": lambda alert: process_text(alert.record),
    "Destination": lambda alert: destination_text(alert.record),
    "Status": lambda alert: alert.status,
}


def cell_data(alert: AlertRow, header: str, role: int) -> Any:
    """What an alert's cell in the column named `header` holds for `role`, as both tables show it alike."""
    if role == Qt.ItemDataRole.DisplayRole:
        return CELL_TEXTS[header](alert)
    if role == AlertRowRole:
        return alert
    if role == Qt.ItemDataRole.ToolTipRole:
        return f"{alert.title}\n{alert.record.get('message', '')}"
    if role == Qt.ItemDataRole.DecorationRole and header == "Severity":
        return severity.icon(alert.severity)
    return None


def header_data(columns: tuple[tuple[str, str | None], ...], section: int, orientation: Qt.Orientation,
                role: int) -> Any:
    """A table's horizontal header from its (header, sort key or None) columns: the name, or why not sortable."""
    if orientation == Qt.Orientation.Horizontal and 0 <= section < len(columns):
        if role == Qt.ItemDataRole.DisplayRole:
            return columns[section][0]
        if role == Qt.ItemDataRole.ToolTipRole and columns[section][1] is None:
            return "not sortable"
    return None


def column_of(columns: tuple[tuple[str, str | None], ...], sort_key: str) -> int:
    """The column that sorts by `sort_key`."""
    return next(i for i, (_, key) in enumerate(columns) if key == sort_key)


class AlertsTableModel(QAbstractTableModel):
    alertsArrived = Signal(list)  # list[AlertRow], newest first, that match the current filter

    def __init__(self, review: AlertReview | None = None, *, page_size: int = PAGE,
                 pages_kept: int = PAGES_KEPT) -> None:
        super().__init__()
        self._review = review
        self._page = page_size
        self._pages_kept = pages_kept
        self._pages: OrderedDict[int, list[AlertRow]] = OrderedDict()  # page number -> rows, least recent first
        self._total = 0
        self._max_sequence = 0
        self._review_rowid = 0
        self._pending: list[int] = []  # final places of new rows not announced yet (see _insert)
        self._rejected: dict[str, str] = {}  # alert id -> why verify rejects its row (see _check)
        self.fetches = 0  # pages read from the store (tests, bench)
        self.successors: dict[str, str] = {}  # incident -> its newest state's alert id, from the last refresh
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
        self._pages.clear()
        self._total = 0
        if self._review is not None:
            self._max_sequence = self._review.max_sequence()
            self._review_rowid = self._review.last_review_rowid()
            self._total = self._review.alert_count(self.filter)
        self.endResetModel()

    @property
    def total(self) -> int:
        """How many alerts match the filter; a free-text count stops past COUNT_CAP."""
        return self._total

    @property
    def total_text(self) -> str:
        if self.filter.text.strip() and self._total > COUNT_CAP:
            return f"more than {COUNT_CAP:,}"
        return f"{self._total:,}"

    def _page_rows(self, number: int) -> list[AlertRow]:
        rows = self._pages.get(number)
        if rows is not None:
            self._pages.move_to_end(number)
            return rows
        if self._review is None:
            return []
        rows = self._review.alert_page_at(self.filter, self.sort_order, number * self._page, self._page)
        self._check(rows)
        self.fetches += 1
        self._pages[number] = rows
        while len(self._pages) > self._pages_kept:
            self._pages.popitem(last=False)
        return rows

    def _check(self, rows: list[AlertRow]) -> None:
        """Which of these rows `weightwarden verify` would reject (store/derived.check_rows): flagged, never hidden."""
        if self._review is None or not rows:
            return
        found = self._review.rejected([row.id for row in rows])
        for row in rows:
            self._rejected.pop(row.id, None)
        self._rejected.update(found)

    def rejected_reason(self, alert_id: str) -> str | None:
        """Why verify rejects the row of this alert, or None (checked when its page was read)."""
        return self._rejected.get(alert_id)

    def row(self, position: int) -> AlertRow:
        """The alert at a position (fetching its page if needed); IndexError past the end."""
        if not 0 <= position < self._total:
            raise IndexError(position)
        stored = self._stored_position(position)
        rows = self._page_rows(stored // self._page)
        offset = stored % self._page
        if offset >= len(rows):  # the store holds fewer than counted (a time range moved on)
            raise IndexError(position)
        return rows[offset]

    def _stored_position(self, position: int) -> int:
        """While new rows are being inserted the store already holds all of them: skip the ones not yet
        announced, so every row the view sees matches the row count it was told about."""
        for place in self._pending:
            if place > position:
                break
            position += 1
        return position

    def _row_or_none(self, position: int) -> AlertRow | None:
        try:
            return self.row(position)
        except IndexError:
            return None

    def position_of(self, alert_id: str) -> int | None:
        """Where an alert is in the current filter and order (None: not shown)."""
        for number, rows in self._pages.items():
            for offset, row in enumerate(rows):
                if row.id == alert_id:
                    return number * self._page + offset
        if self._review is None:
            return None
        position = self._review.alert_position(self.filter, self.sort_order, alert_id)
        return position if position is not None and position < self._total else None

    def refresh_live(self) -> list[AlertRow]:
        """Pick up alerts and reviews committed since the last look; returns the new alerts."""
        if self._review is None:
            return []
        new = self._review.alerts_after(self._max_sequence, self.filter)
        self._max_sequence = max([self._max_sequence, *(a.sequence for a in new)])
        # A new state of an incident already listed replaces its row; where that row stood is not known
        # once the store has superseded it, so the list is read again (a few times per incident at most).
        self.successors = {a.incident: a.id for a in new if a.updates and a.incident}
        if self.successors:
            self.reload()
        elif new:
            self._insert(new)
        self._review_rowid, reviews = self._review.reviews_after(self._review_rowid)
        statuses = {r["alert_id"]: r["status"] for r in reviews if r["status"]}
        if statuses:
            for number, rows in self._pages.items():
                for offset, row in enumerate(rows):
                    if row.id in statuses and statuses[row.id] != row.status:
                        rows[offset] = dataclasses.replace(row, status=statuses[row.id])
                        self._check([rows[offset]])
                        position = number * self._page + offset
                        self.dataChanged.emit(self.index(position, 0), self.index(position, len(COLUMNS) - 1))
        if new:
            self.alertsArrived.emit(new)
        return new

    def _insert(self, new: list[AlertRow]) -> None:
        """New rows where the order puts them; rows and selection below move down, nothing reloads."""
        assert self._review is not None
        if self.sort_order == AlertSort():  # newest first: they are the first rows
            places = list(range(len(new)))
        elif len(new) > LIVE_INSERTS:
            self.reload()
            return
        else:
            found = [self._review.alert_position(self.filter, self.sort_order, a.id) for a in new]
            places = sorted(p for p in found if p is not None)
        self._pages.clear()  # page boundaries moved; the pages in view are fetched again on demand
        # Final places in ascending order, a run of adjacent ones at a time: each insert leaves the
        # places before it as they will end up.
        runs: list[list[int]] = []
        for place in places:
            if runs and place == runs[-1][-1] + 1:
                runs[-1].append(place)
            else:
                runs.append([place])
        self._pending = places
        for run in runs:
            self.beginInsertRows(QModelIndex(), run[0], run[-1])
            self._pending = self._pending[len(run):]
            self._total += len(run)
            self.endInsertRows()

    # ------------------------------------------------------------------ Qt model

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else self._total

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.column() >= len(COLUMNS):
            return None
        alert = self._row_or_none(index.row())
        if alert is None:
            return None
        column = index.column()
        rejected = self._rejected.get(alert.id)
        shown = cell_data(alert, COLUMNS[column][0], role)
        if role == Qt.ItemDataRole.DisplayRole and rejected and column == 0:
            return f"{REJECTED_MARK} {shown}"
        if role == Qt.ItemDataRole.ToolTipRole and rejected:
            return f"Rejected by verify: the database was altered: {rejected}\n{shown}"
        if role == Qt.ItemDataRole.BackgroundRole and rejected:
            return QColor(REJECTED_BACKGROUND)
        if role == Qt.ItemDataRole.ForegroundRole and column == 6:
            return QColor(severity.STATUS_COLOURS.get(alert.status, "#333333"))
        if role == Qt.ItemDataRole.FontRole and column == 6 and alert.status == "open":
            return _BOLD
        return shown

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        return header_data(COLUMNS, section, orientation, role)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS) or COLUMNS[column][1] is None:
            return
        key = COLUMNS[column][1]
        assert key is not None
        self.sort_order = AlertSort(key, descending=order == Qt.SortOrder.DescendingOrder)
        self.reload()

    def sort_column(self) -> int:
        return column_of(COLUMNS, self.sort_order.key)


def since_for(choice: str, now: datetime) -> datetime | None:
    """The start of a named time range ("1h", "24h", "7d", "30d"; anything else: all time)."""
    from datetime import timedelta
    spans = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
             "30d": timedelta(days=30)}
    return now - spans[choice] if choice in spans else None
