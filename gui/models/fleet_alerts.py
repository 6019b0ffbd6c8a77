"""The fleet's alerts table: the central index (gui/central_source.py) listed page by page, by keyset.

Unlike the local list (gui/models/alerts.py, positioned pages over SQLite), a row's place in a million
documents cannot be asked for without a deep offset, so the list grows as it is scrolled: Qt asks
`canFetchMore`/`fetchMore` when the last rows come into view, and the next page is the one after the last
row's sort values (`search_after`). The first page is painted as soon as it arrives; the total, counted
with it, is shown beside the filter bar. Pages come back through the source's worker thread; one asked
before the filter or the order changed is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from weightwarden.agent.store.review_queries import AlertFilter, AlertRow
from weightwarden.gui.central import CentralError, FleetAlert, FleetFilter, FleetPage
from weightwarden.gui.central_source import CentralSource
from weightwarden.gui.models.alerts import cell_data, column_of, header_data

Index = QModelIndex | QPersistentModelIndex
# (header, sort key or None when the column is not sortable): the local columns with the host, without status
COLUMNS = (("Time", "time"), ("Host", "host"), ("Severity", "severity"), ("Rule", "rule"), ("Model", None),
           ("Process", None), ("Destination", None))
HOST_COLUMN = 1


@dataclass(frozen=True)
class FleetSort:
    key: str = "time"
    descending: bool = True


class FleetAlertsModel(QAbstractTableModel):
    loaded = Signal()  # a page arrived (the first one after a reload, or one more)
    failed = Signal(str)  # the store did not answer: why

    def __init__(self, source: CentralSource, *, page_size: int | None = None) -> None:
        super().__init__()
        self.source = source
        self._page = page_size or source.page_size
        self._rows: list[FleetAlert] = []
        self._total = 0
        self._exact = True
        self._generation = 0
        self._loading = False
        self._end = True
        self.pages = 0  # pages received since the last reload (tests, bench)
        self.error = ""
        self.successors: dict[str, str] = {}  # the local model's interface: no incidents are followed here
        self.filter = AlertFilter()
        self.host = ""
        self.sort_order = FleetSort()

    # ------------------------------------------------------------------ loading

    def set_filter(self, flt: AlertFilter) -> None:
        self.filter = flt
        self.reload()

    def reload(self) -> None:
        self._generation += 1
        self.beginResetModel()
        self._rows = []
        self._total = 0
        self._exact = True
        self._loading = False
        self._end = False
        self.pages = 0
        self._fetch()  # asked before the reset is announced, so the view sees it loading (answers are queued)
        self.endResetModel()

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def total(self) -> int:
        return self._total

    @property
    def total_text(self) -> str:
        return f"{self._total:,}" if self._exact else f"more than {self._total:,}"

    def _fetch(self) -> None:
        if self._loading or self._end:
            return
        self._loading = True
        generation = self._generation
        flt = FleetFilter(self.filter, self.host)
        after = self._rows[-1].sort if self._rows else None
        order, size = self.sort_order, self._page
        self.source.ask(lambda central: central.page(flt, order.key, order.descending, after, size),
                        lambda page: self._arrived(generation, after is None, page),
                        lambda error: self._failed(generation, error))

    def _arrived(self, generation: int, first: bool, page: FleetPage) -> None:
        if generation != self._generation:
            return
        self._loading = False
        self.error = ""
        if first:
            self._total, self._exact = page.total, page.exact
        if len(page.alerts) < self._page:
            self._end = True
        if page.alerts:
            start = len(self._rows)
            self.beginInsertRows(QModelIndex(), start, start + len(page.alerts) - 1)
            self._rows.extend(page.alerts)
            self.endInsertRows()
        self.pages += 1
        self.loaded.emit()

    def _failed(self, generation: int, error: CentralError) -> None:
        if generation != self._generation:
            return
        self._loading = False
        self._end = True  # until the next reload: a store that is down is not asked again at every scroll
        self.error = str(error)
        self.failed.emit(self.error)

    def row(self, position: int) -> AlertRow:
        return self._rows[position].row

    def fleet_alert(self, position: int) -> FleetAlert:
        return self._rows[position]

    def position_of(self, alert_id: str) -> int | None:
        return next((i for i, a in enumerate(self._rows) if a.row.id == alert_id), None)

    def refresh_live(self) -> list[AlertRow]:
        """The local model's live update; the fleet list is re-read on demand instead."""
        return []

    # ------------------------------------------------------------------ Qt model

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008 - Qt's signature
        return not parent.isValid() and not self._end and not self._loading and bool(self._rows)

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if not parent.isValid():
            self._fetch()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows) or index.column() >= len(COLUMNS):
            return None
        fleet = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole and index.column() == HOST_COLUMN:
            return fleet.host
        return cell_data(fleet.row, COLUMNS[index.column()][0], role)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        return header_data(COLUMNS, section, orientation, role)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        key = COLUMNS[column][1] if 0 <= column < len(COLUMNS) else None
        if key is None:
            return
        wanted = FleetSort(key, descending=order == Qt.SortOrder.DescendingOrder)
        if wanted == self.sort_order:
            return
        self.sort_order = wanted
        if self._generation:  # not before the view's first load: the table sets its order while being built
            self.reload()

    def sort_column(self) -> int:
        return column_of(COLUMNS, self.sort_order.key)
