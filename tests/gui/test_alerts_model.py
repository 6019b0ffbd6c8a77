"""The windowed alerts model: Qt's model checks, pages by position, sorting, filtering, live updates."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PySide6.QtCore import QPersistentModelIndex, Qt
from pytestqt.modeltest import ModelTester

from tests.gui.helpers import make_alert, make_database
from weightwarden.agent.store import Store
from weightwarden.agent.store.review_queries import AlertFilter, AlertRow, AlertSort
from weightwarden.gui.models.alerts import AlertsTableModel
from weightwarden.gui.models.inventory import ModelInventoryModel
from weightwarden.gui.models.my_alerts import MyAlertsModel


def open_model(path: Path, page: int = 10) -> tuple[Store, AlertsTableModel]:
    store = Store(path, read_only=True)
    return store, AlertsTableModel(store.review, page_size=page)


@contextmanager
def live_model(path: Path, page: int = 10) -> Iterator[tuple[Store, AlertsTableModel, Store]]:
    """The app's read-only store and model, and a writer storing alerts beside it as the agent does."""
    store, model = open_model(path, page)
    writer = Store(path)
    try:
        yield store, model, writer
    finally:
        writer.close()
        store.close()


def test_alerts_model_passes_qt_model_checks(qtmodeltester: ModelTester, tmp_path: Path) -> None:
    store, model = open_model(make_database(tmp_path / "ww.db", alerts=25))
    try:
        model.reload()
        qtmodeltester.check(model)
        model.sort(1, Qt.SortOrder.AscendingOrder)
        qtmodeltester.check(model)
    finally:
        store.close()


def test_my_alerts_model_passes_qt_model_checks(qtmodeltester: ModelTester, tmp_path: Path) -> None:
    store = Store(make_database(tmp_path / "ww.db", alerts=6), read_only=True)
    try:
        rows = store.review.alerts_of_user("ana", limit=4)  # make_alert's processes run as ana
        assert len(rows) == 4 and store.review.alerts_of_user("bob") == []
        model = MyAlertsModel([{"id": r.id, "time": r.time, "severity": r.severity, "rule": r.rule, "title": r.title,
                                "model": r.model, "status": r.status, "message": "m"} for r in rows])
        qtmodeltester.check(model)
        assert model.data(model.index(0, 3)) == rows[0].title
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


def every_row(model: AlertsTableModel) -> list[AlertRow]:
    return [model.row(i) for i in range(model.rowCount())]


def test_row_count_spans_every_alert_and_pages_are_fetched_on_demand(tmp_path: Path) -> None:
    store, model = open_model(make_database(tmp_path / "ww.db", alerts=25))
    try:
        model.reload()
        assert model.rowCount() == 25 and model.fetches == 0
        last = model.row(24)  # a jump to the end: found by position, nothing above it is read
        assert model.fetches == 1
        assert last.sequence == min(r.sequence for r in store.review.iter_alerts(AlertFilter(), AlertSort()))
        rows = every_row(model)
        assert [r.sequence for r in rows] == sorted((r.sequence for r in rows), reverse=True)
        assert len({r.id for r in rows}) == 25
        assert model.fetches == 3  # each page once
        with pytest.raises(IndexError):
            model.row(25)
        assert model.data(model.index(25, 0)) is None
    finally:
        store.close()


def test_only_a_few_pages_are_kept(tmp_path: Path) -> None:
    path = make_database(tmp_path / "ww.db", alerts=25)
    store = Store(path, read_only=True)
    try:
        model = AlertsTableModel(store.review, page_size=5, pages_kept=2)
        model.reload()
        first = model.row(0)
        model.row(10), model.row(20)  # pages 2 and 4 push page 0 out
        assert model.row(0) == first and model.fetches == 4
    finally:
        store.close()


@pytest.mark.parametrize("sort", [AlertSort(), AlertSort("time", descending=False), AlertSort("severity"),
                                  AlertSort("model", descending=False), AlertSort("status")])
@pytest.mark.parametrize("flt", [AlertFilter(), AlertFilter(min_severity=5), AlertFilter(text="firefox"),
                                 AlertFilter(text="rsync", min_severity=3)])
def test_a_page_at_any_position_matches_paging_from_the_top(tmp_path_factory: pytest.TempPathFactory,
                                                            sort: AlertSort, flt: AlertFilter) -> None:
    path = shared_database(tmp_path_factory)
    store = Store(path, read_only=True)
    try:
        review = store.review
        expected = list(review.iter_alerts(flt, sort, batch=7))
        assert expected and len(expected) == review.alert_count(flt)
        for offset in (0, 3, len(expected) // 2, len(expected) - 2):
            assert review.alert_page_at(flt, sort, offset, 4) == expected[offset:offset + 4]
        for position in (0, len(expected) // 3, len(expected) - 1):
            assert review.alert_position(flt, sort, expected[position].id) == position
        outside = next(r for r in review.iter_alerts(AlertFilter(), sort) if r.id not in {e.id for e in expected}) \
            if len(expected) < 40 else None
        if outside is not None:
            assert review.alert_position(flt, sort, outside.id) is None
    finally:
        store.close()


def shared_database(factory: pytest.TempPathFactory) -> Path:
    path = factory.getbasetemp() / "positions" / "ww.db"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        make_database(path, alerts=40)
    return path


def test_sorting_by_severity_shows_every_row_once_in_order(tmp_path: Path) -> None:
    store, model = open_model(make_database(tmp_path / "ww.db", alerts=25), page=4)
    try:
        model.sort(1, Qt.SortOrder.DescendingOrder)
        severities = [r.severity for r in every_row(model)]
        assert len(severities) == 25 and severities == sorted(severities, reverse=True)
        assert len({r.id for r in every_row(model)}) == 25
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
        everything = list(store.review.iter_alerts(AlertFilter(), AlertSort()))
        model.set_filter(AlertFilter(text='"AND (-'))  # FTS syntax typed by a person is literal, not an error:
        # the word "and" (real rule descriptions in the evidence hold it), found exactly where it is
        literal = {r.id for r in everything if re.search(r"(?<![0-9a-z])and(?![0-9a-z])", r.record_json, re.I)}
        assert {model.row(i).id for i in range(model.rowCount())} == literal and 0 < len(literal) < len(everything)
        model.set_filter(AlertFilter(rule="canary-model-accessed"))
        assert {model.row(i).rule for i in range(model.rowCount())} == {"canary-model-accessed"}
    finally:
        store.close()


def test_new_alerts_and_status_changes_arrive_live(tmp_path: Path) -> None:
    path = make_database(tmp_path / "ww.db", alerts=5)
    with live_model(path) as (_store, model, writer):
        model.reload()
        inserted: list[int] = []
        model.rowsInserted.connect(lambda _parent, first, last: inserted.append(last - first + 1))
        on_screen = model.row(2).id
        stored = writer.write([make_alert(100, minutes_ago=0), make_alert(101, minutes_ago=0)])
        writer.review.add_review(on_screen, "resolve", uid=0, user="root")
        new = model.refresh_live()
        assert [a.id for a in new] == [stored[1].id, stored[0].id]
        assert inserted == [2] and model.row(0).id == stored[1].id and model.total == 7
        assert model.row(4).id == on_screen and model.row(4).status == "resolved"


def test_live_updates_respect_a_text_filter(tmp_path: Path) -> None:
    path = make_database(tmp_path / "ww.db", alerts=8)
    with live_model(path) as (_store, model, writer):
        model.set_filter(AlertFilter(text="firefox"))
        before = model.rowCount()
        stored = writer.write([make_alert(102, minutes_ago=0), make_alert(103, minutes_ago=0)])  # firefox, aws
        new = model.refresh_live()
        assert [a.id for a in new] == [stored[0].id] and model.rowCount() == before + 1
        assert model.refresh_live() == []


def test_new_alerts_land_in_their_place_in_another_order(tmp_path: Path, qtmodeltester: ModelTester) -> None:
    path = make_database(tmp_path / "ww.db", alerts=12)
    with live_model(path, page=5) as (store, model, writer):
        model.sort(1, Qt.SortOrder.DescendingOrder)
        qtmodeltester.check(model)  # watches the inserts below
        resets: list[bool] = []
        model.modelReset.connect(lambda: resets.append(True))
        selected = model.row(7)
        persistent = QPersistentModelIndex(model.index(7, 0))
        writer.write([make_alert(200, severity=10, minutes_ago=0), make_alert(201, severity=5, minutes_ago=0)])
        assert len(model.refresh_live()) == 2 and not resets and model.rowCount() == 14
        fresh = AlertsTableModel(store.review, page_size=5)
        fresh.sort(1, Qt.SortOrder.DescendingOrder)
        assert [r.id for r in every_row(model)] == [r.id for r in every_row(fresh)]
        assert model.row(persistent.row()).id == selected.id  # the view's selection moved with its row


def test_a_new_state_of_a_listed_incident_replaces_its_row(tmp_path: Path) -> None:
    from weightwarden.agent.events import Alert

    path = make_database(tmp_path / "ww.db", alerts=5)
    with live_model(path) as (_store, model, writer):
        model.reload()
        listed, before = model.row(2), model.total
        (stored,) = writer.write([Alert(listed.rule, listed.title, 9, "update 1", evidence=dataclasses.replace(
            listed.evidence, incident=listed.incident, updates=1))])
        assert [a.id for a in model.refresh_live()] == [stored.id]
        assert model.total == before and model.successors == {listed.incident: stored.id}
        shown = [model.row(i).id for i in range(model.total)]
        assert shown[0] == stored.id and listed.id not in shown
