"""The lazy alerts model: Qt's model checks, paging, sorting, filtering and live updates."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.modeltest import ModelTester

from tests.gui.helpers import make_alert, make_database
from weightwarden.agent.store import Store
from weightwarden.agent.store.review_queries import AlertFilter
from weightwarden.gui.models.alerts import AlertsTableModel
from weightwarden.gui.models.inventory import ModelInventoryModel


def open_model(path: Path, page: int = 10) -> tuple[Store, AlertsTableModel]:
    store = Store(path, read_only=True)
    return store, AlertsTableModel(store.review, page_size=page)


def test_alerts_model_passes_qt_model_checks(qtmodeltester: ModelTester, tmp_path: Path) -> None:
    store, model = open_model(make_database(tmp_path / "ww.db", alerts=25))
    try:
        model.reload()
        qtmodeltester.check(model)
        while model.canFetchMore():
            model.fetchMore()
        qtmodeltester.check(model)
    finally:
        store.close()


def test_inventory_model_passes_qt_model_checks(qtmodeltester: ModelTester, tmp_path: Path) -> None:
    store = Store(make_database(tmp_path / "ww.db"), read_only=True)
    try:
        model = ModelInventoryModel(store.review.model_summaries())
        assert model.rowCount() == 4
        qtmodeltester.check(model)
    finally:
        store.close()


def test_rows_are_fetched_a_page_at_a_time_newest_first(tmp_path: Path) -> None:
    store, model = open_model(make_database(tmp_path / "ww.db", alerts=25))
    try:
        model.reload()
        assert model.rowCount() == 10 and model.total == 25
        sequences = [model.row(i).sequence for i in range(10)]
        assert sequences == sorted(sequences, reverse=True)
        model.fetchMore()
        model.fetchMore()
        assert model.rowCount() == 25 and not model.canFetchMore()
        assert len({model.row(i).id for i in range(25)}) == 25
    finally:
        store.close()


def test_sorting_by_severity_pages_through_every_row_once(tmp_path: Path) -> None:
    store, model = open_model(make_database(tmp_path / "ww.db", alerts=25), page=4)
    try:
        model.sort(1, Qt.SortOrder.DescendingOrder)
        while model.canFetchMore():
            model.fetchMore()
        severities = [model.row(i).severity for i in range(model.rowCount())]
        assert len(severities) == 25 and severities == sorted(severities, reverse=True)
        model.sort(4, Qt.SortOrder.AscendingOrder)  # process: not sortable, nothing changes
        assert model.sort_order.key == "severity"
    finally:
        store.close()


def test_filters_and_free_text(tmp_path: Path) -> None:
    store, model = open_model(make_database(tmp_path / "ww.db", alerts=25), page=100)
    try:
        model.set_filter(AlertFilter(min_severity=7))
        assert model.rowCount() == sum(1 for i in range(25) if i % 11 >= 7)
        model.set_filter(AlertFilter(text="firefox"))
        assert model.rowCount() > 0 and all(model.row(i).record["process"]["name"] == "firefox"
                                            for i in range(model.rowCount()))
        model.set_filter(AlertFilter(text="copy-1"))  # a path fragment; the last word is a prefix
        assert {model.row(i).record["paths"][1] for i in range(model.rowCount())} >= {"/tmp/stage/copy-1.safetensors"}
        model.set_filter(AlertFilter(text='"AND (-'))  # FTS syntax typed by a person is literal, not an error
        assert model.rowCount() == 0
        model.set_filter(AlertFilter(rule="canary-touched"))
        assert {model.row(i).rule for i in range(model.rowCount())} == {"canary-touched"}
    finally:
        store.close()


def test_new_alerts_and_status_changes_arrive_live(tmp_path: Path) -> None:
    path = make_database(tmp_path / "ww.db", alerts=5)
    store, model = open_model(path)
    writer = Store(path)
    try:
        model.reload()
        inserted: list[int] = []
        model.rowsInserted.connect(lambda _parent, first, last: inserted.append(last - first + 1))
        stored = writer.write([make_alert(100, minutes_ago=0), make_alert(101, minutes_ago=0)])
        writer.review.add_review(model.row(2).id, "resolve", uid=0, user="root")
        new = model.refresh_live()
        assert [a.id for a in new] == [stored[1].id, stored[0].id]
        assert inserted == [2] and model.row(0).id == stored[1].id and model.total == 7
        assert model.row(4).status == "resolved"
    finally:
        writer.close()
        store.close()


def test_live_updates_respect_a_text_filter(tmp_path: Path) -> None:
    path = make_database(tmp_path / "ww.db", alerts=8)
    store, model = open_model(path)
    writer = Store(path)
    try:
        model.set_filter(AlertFilter(text="firefox"))
        before = model.rowCount()
        stored = writer.write([make_alert(102, minutes_ago=0), make_alert(103, minutes_ago=0)])  # firefox, aws
        new = model.refresh_live()
        assert [a.id for a in new] == [stored[0].id] and model.rowCount() == before + 1
        assert model.refresh_live() == []
    finally:
        writer.close()
        store.close()
