"""The fleet view (`weightwarden-gui --central URL`) over a real OpenSearch-compatible server (osmem-server),
loaded with the ECS documents the agent's own renderer makes from the real engine's alerts on the detection
fixtures (tests/agent/siem/corpus.py: each fixture case on its own host). Real widgets, offscreen.

A recording proxy in front of the server keeps every search body the app sent: the list must page with
`search_after` and never ask for a `from` beyond 0.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from tests.agent.siem.corpus import INDEX, Cluster, document, fixture_cases
from weightwarden.agent.events import parse_time, utc_now
from weightwarden.agent.forward.testing.fault_proxy import FaultProxy
from weightwarden.gui.central_source import READ_ONLY, CentralSource
from weightwarden.gui.fleet_window import FleetWindow
from weightwarden.gui.main import main
from weightwarden.gui.models.fleet_alerts import HOST_COLUMN, FleetAlertsModel

osmem_server = pytest.importorskip("osmem_server", reason="osmem-server is in the test extra")

PAGE = 10  # small pages, so the corpus's alerts take several


@dataclass
class Fleet:
    url: str
    alerts: dict[str, str]  # alert id -> host
    times: dict[str, str]  # alert id -> @timestamp


class RecordingProxy(FaultProxy):
    """FaultProxy (it can also answer 401 on demand) that keeps the body of every _search it carried."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.searches: list[dict[str, Any]] = []

    def handle(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        if path.split("?")[0].endswith("/_search"):
            with self._lock:
                self.searches.append(json.loads(body or b"{}"))
        return super().handle(method, path, body, headers)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    server = osmem_server.OsmemServer.start(japanese=False)
    try:
        cluster = Cluster(server.url)
        cluster.install_template()
        alerts: dict[str, str] = {}
        times: dict[str, str] = {}
        documents = []
        for case in fixture_cases(Path(tmp_path_factory.mktemp("cases"))):
            for record in [*case.events, *case.alerts]:
                doc = document(record, case.host)
                documents.append((record.id, doc))
                if record.kind == "alert":
                    alerts[record.id] = case.host
                    times[record.id] = doc["@timestamp"]
        cluster.bulk(documents, INDEX)
        assert len(set(alerts.values())) > 20 and len(alerts) > 3 * PAGE  # several hosts, several pages
        yield Fleet(server.url, alerts, times)
    finally:
        server.close()
        if server.process.stdout is not None:  # osmem's close() leaves its stdout pipe open
            server.process.stdout.close()


@pytest.fixture
def proxy(fleet: Fleet) -> Iterator[RecordingProxy]:
    with RecordingProxy(fleet.url) as running:
        yield running


@pytest.fixture
def open_window(qtbot: QtBot) -> Iterator[Callable[..., FleetWindow]]:
    windows: list[FleetWindow] = []

    def make(url: str, **kwargs: Any) -> FleetWindow:
        kwargs.setdefault("page_size", PAGE)
        window = FleetWindow(CentralSource(url, **kwargs))
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.source.stop()


def listed(model: FleetAlertsModel) -> list[tuple[str, str]]:
    return [(model.row(i).id, model.index(i, HOST_COLUMN).data()) for i in range(model.rowCount())]


def test_every_hosts_alerts_listed_by_keyset_pages(qtbot: QtBot, fleet: Fleet, proxy: RecordingProxy,
                                                   open_window: Callable[..., FleetWindow]) -> None:
    window = open_window(proxy.url)
    view = window.alerts
    model = view.model
    assert isinstance(model, FleetAlertsModel)
    qtbot.waitUntil(lambda: model.rowCount() == PAGE, timeout=10_000)  # the first page, painted alone
    assert model.total == len(fleet.alerts) and f"{len(fleet.alerts):,} alerts on the fleet" in view.count.text()
    assert model.headerData(HOST_COLUMN, Qt.Orientation.Horizontal) == "Host"
    while model.rowCount() < model.total:  # scrolled to the end, as a person would: Qt asks for the next page
        before = model.rowCount()
        view.table.scrollToBottom()
        qtbot.waitUntil(lambda before=before: model.rowCount() > before, timeout=10_000)
    rows = listed(model)
    assert dict(rows) == fleet.alerts and len(rows) == len(fleet.alerts)  # each once, with its own host
    times = [parse_time(fleet.times[alert_id]) for alert_id, _ in rows]
    assert times == sorted(times, reverse=True)  # newest first across page boundaries
    pages = [body for body in proxy.searches if body.get("size")]
    assert len(pages) == math.ceil(len(fleet.alerts) / PAGE)  # the first page asked once, then one per page
    assert all(body.get("from", 0) == 0 for body in proxy.searches)  # never a deep offset
    assert "search_after" not in pages[0] and all("search_after" in body for body in pages[1:])
    assert [body["sort"][-1] for body in pages] == [{"event.id": {"order": "asc"}}] * len(pages)


def test_the_host_filter_narrows_the_list(qtbot: QtBot, fleet: Fleet, proxy: RecordingProxy,
                                          open_window: Callable[..., FleetWindow]) -> None:
    window = open_window(proxy.url)
    view = window.alerts
    hosts = sorted(set(fleet.alerts.values()), key=lambda h: -list(fleet.alerts.values()).count(h))
    qtbot.waitUntil(lambda: view.host.count() == len(hosts) + 1, timeout=10_000)  # from a terms aggregation
    busiest = hosts[0]
    expected = {a for a, h in fleet.alerts.items() if h == busiest}
    assert len(expected) > 1
    view.host.setCurrentIndex(view.host.findData(busiest))
    qtbot.waitUntil(lambda: view.model.total == len(expected) and view.model.rowCount() == len(expected),
                    timeout=10_000)
    assert {alert_id for alert_id, host in listed(view.model) if host == busiest} == expected
    assert view.model.rowCount() == len(expected)
    assert proxy.searches[-1]["query"]["bool"]["filter"][-1] == {"term": {"host.name": busiest}}


def test_the_detail_shows_one_alert_read_only(qtbot: QtBot, fleet: Fleet, proxy: RecordingProxy,
                                              open_window: Callable[..., FleetWindow]) -> None:
    window = open_window(proxy.url)
    window.show_view("alerts")
    view = window.alerts
    qtbot.waitUntil(lambda: view.model.rowCount() > 0, timeout=10_000)
    view.table.selectRow(0)
    alert = view.model.row(0)
    host = fleet.alerts[alert.id]
    assert view.detail.alert_id == alert.id and view.detail.host == host
    page = view.detail.browser.toPlainText()
    assert f"Host: {host}" in page and alert.rule in page and "Evidence timeline" in page
    assert view.detail.message.text() == READ_ONLY
    assert all(button.isHidden() for button in (*view.detail.status_buttons.values(), view.detail.justify_button))
    assert window.source.act({"op": "resolve", "alert_id": alert.id}) == {"ok": False, "error": READ_ONLY}

    other = next(a for a, h in fleet.alerts.items() if h != host)  # by id: asked of the store
    view.detail.show_alert(other)
    qtbot.waitUntil(lambda: view.detail.alert_id == other, timeout=10_000)
    assert view.detail.host == fleet.alerts[other] and f"Host: {fleet.alerts[other]}" in \
        view.detail.browser.toPlainText()


def test_the_overview_counts_the_fleet_from_aggregations(qtbot: QtBot, fleet: Fleet, proxy: RecordingProxy,
                                                         open_window: Callable[..., FleetWindow]) -> None:
    window = open_window(proxy.url)
    window.show_view("overview")
    window.overview.refresh()
    day = sum(1 for t in fleet.times.values() if parse_time(t) >= utc_now() - timedelta(days=1))
    qtbot.waitUntil(lambda: window.overview.alerts_24h.value.text() == f"{day:,}", timeout=10_000)
    assert window.overview.open_alerts.value.text() == f"{len(set(fleet.alerts.values())):,}"
    top_host, count = window.overview.top_processes.items[0]
    assert count == max(list(fleet.alerts.values()).count(h) for h in set(fleet.alerts.values()))
    assert list(fleet.alerts.values()).count(top_host) == count
    assert sum(total for _, total, _ in window.overview.chart.bars) == sum(
        1 for t in fleet.times.values() if parse_time(t) >= utc_now() - timedelta(days=14))
    assert all(body.get("size") == 0 for body in proxy.searches if "aggs" in body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("case", ["unreachable", "unauthorized", "missing", "not a URL"])
def test_a_store_that_does_not_answer_is_said_in_the_view(qtbot: QtBot, case: str, proxy: RecordingProxy,
                                                          open_window: Callable[..., FleetWindow]) -> None:
    url, index, expected = {
        "unreachable": (f"http://127.0.0.1:{free_port()}", "", "cannot be reached"),
        "unauthorized": (proxy.url, "", "refused the credentials (HTTP 401)"),
        "missing": (proxy.url, "weightwarden-nothing-here", "no index 'weightwarden-nothing-here'"),
        "not a URL": ("ftp://search.example.org", "", "not an http(s) URL: 'ftp://search.example.org'"),
    }[case]
    if case == "unauthorized":
        proxy.reject_next(10, 401)
    window = open_window(url, index=index)
    view = window.alerts
    qtbot.waitUntil(lambda: not view.error.isHidden(), timeout=10_000)
    assert expected in view.error.text() and expected in window.banner.text()
    assert window.banner.level == "error" and view.model.rowCount() == 0
    assert view.count.text() == "No answer from the central store"


def test_a_silent_store_never_blocks_the_window(qtbot: QtBot, open_window: Callable[..., FleetWindow]) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        window = open_window(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=1.0)
        view = window.alerts
        assert view.count.text() == "Loading the fleet's alerts…"  # built without waiting for the store
        assert window.source.pending > 0
        qtbot.waitUntil(lambda: not view.error.isHidden(), timeout=10_000)
        assert "cannot be reached" in view.error.text() and "timed out" in view.error.text().lower()


def test_central_option_and_setting_open_the_fleet_view(qtbot: QtBot, proxy: RecordingProxy, tmp_path: Path) -> None:
    out = tmp_path / "fleet.png"
    assert main(["--central", proxy.url, "--screenshot", str(out), "--view", "detail"]) == 0
    assert QImage(str(out)).size().width() == 1280
    assert any(body.get("size") for body in proxy.searches)  # the list was asked of the central store
    assert not any("aggs" in body for body in proxy.searches[:1])  # the first request is the first page
    asked = len(proxy.searches)
    config = tmp_path / "config.toml"
    config.write_text(f'[gui]\ncentral_url = "{proxy.url}"\ncentral_index = "logs-weightwarden.*"\n')
    assert main(["--config", str(config), "--screenshot", str(tmp_path / "setting.png"), "--view", "overview"]) == 0
    assert len(proxy.searches) > asked


def test_the_fleet_model_passes_qt_model_checks(qtbot: QtBot, qtmodeltester: Any, proxy: RecordingProxy) -> None:
    source = CentralSource(proxy.url, page_size=PAGE)
    try:
        model = FleetAlertsModel(source)
        qtmodeltester.check(model)  # empty, before the first page
        model.reload()
        qtbot.waitUntil(lambda: model.rowCount() == PAGE, timeout=10_000)
        qtmodeltester.check(model)
        model.fetchMore()
        qtbot.waitUntil(lambda: model.rowCount() == 2 * PAGE, timeout=10_000)
        qtmodeltester.check(model)
    finally:
        source.stop()


def test_text_search_and_host_order(qtbot: QtBot, fleet: Fleet, proxy: RecordingProxy,
                                    open_window: Callable[..., FleetWindow]) -> None:
    window = open_window(proxy.url, page_size=100)
    view = window.alerts
    qtbot.waitUntil(lambda: view.model.rowCount() == len(fleet.alerts), timeout=10_000)
    rule = view.model.row(0).rule
    expected = {view.model.row(i).id for i in range(view.model.rowCount()) if view.model.row(i).rule == rule}
    view.search.setText(rule[2:-2])  # a piece of the rule id: every word matches anywhere in the usual fields
    view.apply_filter()
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() > 0, timeout=10_000)
    found = {view.model.row(i).id for i in range(view.model.rowCount())}
    assert expected <= found and len(found) < len(fleet.alerts)
    assert all(rule[2:-2] in json.dumps(view.model.row(i).record) for i in range(view.model.rowCount()))

    view.search.setText("")
    view.table.sortByColumn(HOST_COLUMN, Qt.SortOrder.AscendingOrder)
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() == len(fleet.alerts), timeout=10_000)
    hosts = [view.model.index(i, HOST_COLUMN).data() for i in range(view.model.rowCount())]
    assert hosts == sorted(fleet.alerts.values())
    assert proxy.searches[-1]["sort"][0] == {"host.name": {"order": "asc"}}


def test_the_local_window_opens_the_fleet_view_and_remembers_it(qtbot: QtBot, fleet: Fleet, proxy: RecordingProxy,
                                                                database: Path, window_factory: Any) -> None:
    from weightwarden.agent.config import load_config
    from weightwarden.gui.app_window import FLEET_URL_SETTING, app_settings

    config = load_config(None)
    window = window_factory(database, config=config)
    assert window.fleet_url() == ""  # nothing chosen yet, nothing configured
    fleet_window = window.open_fleet_view(proxy.url)
    qtbot.addWidget(fleet_window)
    qtbot.waitUntil(lambda: fleet_window.alerts.model.total == len(fleet.alerts), timeout=10_000)
    assert app_settings().value(FLEET_URL_SETTING) == proxy.url and window.fleet_url() == proxy.url
    assert window.alerts.model.total == 30  # the local window still shows this machine's alerts
    window.close()
    assert fleet_window.source._stopped
