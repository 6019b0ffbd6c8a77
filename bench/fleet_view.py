"""The fleet view on a large central index: first paint of the alerts list, a page turn, a host filter.

    .venv/bin/python -m bench.fleet_view [--docs 1000000] [--hosts 1000] [--write-docs]

Starts osmem-server (the OpenSearch-compatible server of the tests), installs the shipped index template
(siem/elastic) and loads `--docs` ECS alert documents over `_bulk`: the engine's real alerts
(tests/gui/helpers.make_alert) rendered by the agent's own ECS renderer, each copy given its own event id,
host, time and severity. Then opens the fleet window (offscreen Qt) on it and times what a person waits for.
Every request's body is kept: the figures hold only if no `from` beyond 0 was sent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
import uuid
from datetime import timedelta
from typing import Any

INDEX = "logs-weightwarden.fleet-bench"
BATCH = 5000


def templates(count: int = 40) -> list[dict[str, Any]]:
    from tests.gui.helpers import make_alert
    from weightwarden.agent.forward import ecs
    from weightwarden.agent.forward.fields import flatten

    return [ecs.document(flatten("alert", make_alert(i).to_dict()), "template") for i in range(count)]


def call(url: str, path: str, method: str = "GET", body: bytes | None = None,
         kind: str = "application/json") -> Any:
    request = urllib.request.Request(url + path, data=body, method=method, headers={"Content-Type": kind})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read() or b"{}")


def install_template(url: str) -> None:
    from tests.agent.siem.corpus import SIEM

    component = json.loads((SIEM / "elastic" / "component-template.json").read_text())
    template = json.loads((SIEM / "elastic" / "index-template.json").read_text())
    del template["data_stream"]  # osmem has neither data streams nor ingest pipelines; the mappings are the same
    template["template"]["settings"]["index"].pop("default_pipeline")
    call(url, "/_component_template/weightwarden-ecs-mappings", "PUT", json.dumps(component).encode())
    call(url, "/_index_template/logs-weightwarden", "PUT", json.dumps(template).encode())


def load(url: str, docs: int, hosts: int) -> float:
    """`docs` alerts over 60 days, newest now, spread over `hosts` hosts; returns seconds spent."""
    from weightwarden.agent.events import format_time, utc_now

    bases = templates()
    now = utc_now()
    span = timedelta(days=60).total_seconds()
    began = time.monotonic()
    for first in range(0, docs, BATCH):
        lines = []
        for i in range(first, min(docs, first + BATCH)):
            base = bases[i % len(bases)]
            host = f"ws-{(i * 7919) % hosts:04d}"
            doc_id = str(uuid.UUID(int=(i << 64) | 0x5EED))
            doc = dict(base)
            doc["@timestamp"] = format_time(now - timedelta(seconds=span * (docs - i) / docs))
            doc["event"] = {**base["event"], "id": doc_id, "sequence": i, "severity": (i * 7) % 11}
            doc["host"] = {"name": host, "hostname": host}
            doc["agent"] = {**base["agent"], "name": host}
            lines.append(json.dumps({"create": {"_index": INDEX, "_id": doc_id}}))
            lines.append(json.dumps(doc))
        answer = call(url, "/_bulk", "POST", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
        if answer.get("errors"):
            raise SystemExit(f"_bulk refused items: {str(answer['items'][:2])[:300]}")
        done = min(docs, first + BATCH)
        print(f"\r  loaded {done:,}/{docs:,} ({time.monotonic() - began:.0f} s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    call(url, f"/{INDEX}/_refresh", "POST")
    return time.monotonic() - began


def store_times(url: str, runs: int) -> dict[str, float]:
    """The store's own answer times for the queries the view sends (best of `runs`), without the app."""
    from weightwarden.gui.central import CentralStore, FleetFilter

    central = CentralStore(url)
    first = central.page(FleetFilter())
    after = first.alerts[-1].sort
    cases = {"store_first_page": lambda: central.page(FleetFilter()),
             "store_next_page": lambda: central.page(FleetFilter(), after=after),
             "store_choices": central.choices}
    found = {}
    for name, run in cases.items():
        best = float("inf")
        for _ in range(runs):
            began = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - began)
        found[name] = best
    central.close()
    return found


def measure(url: str, runs: int) -> dict[str, Any]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from weightwarden.gui import style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    style.apply(app)  # type: ignore[arg-type]
    figures: dict[str, list[float]] = {"built": [], "first_paint": [], "page_turn": [], "deep_turn": [],
                                       "page_turn_store": [], "deep_turn_store": [], "host_filter": []}
    bodies: list[dict[str, Any]] = []
    total = 0
    for _ in range(runs):
        total, one, sent = open_and_page(app, url)
        for name, seconds in one.items():
            figures[name].append(seconds)
        bodies.extend(sent)
    deep = max((body.get("from", 0) for body in bodies), default=0)
    assert deep == 0, f"a request asked for from={deep}"
    return {"total": total, "requests": len(bodies), "max_from": deep,
            **{k: statistics.median(v) for k, v in figures.items()}}


def pump(app: Any, until: Any, limit: float = 120.0) -> None:
    """Run the event loop until `until()` holds; give up after `limit` seconds."""
    from PySide6.QtCore import QDeadlineTimer, QEventLoop

    deadline = QDeadlineTimer(int(limit * 1000))
    while not until() and not deadline.hasExpired():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
    if not until():
        raise SystemExit("the fleet view did not answer in time")


def open_first_page(app: Any, url: str) -> tuple[Any, Any, dict[str, float]]:
    """The fleet window opened on `url`: (window, its source, built and first_paint in seconds), the first
    page of alerts listed and painted."""
    from PySide6.QtCore import QEvent, QObject

    from weightwarden.gui.central_source import CentralSource
    from weightwarden.gui.fleet_window import FleetWindow

    painted: list[float] = []

    class PaintWatch(QObject):
        def eventFilter(self, _obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint:
                painted.append(time.perf_counter())
            return False

    figures: dict[str, float] = {}
    began = time.perf_counter()
    source = CentralSource(url)
    window = FleetWindow(source)
    figures["built"] = time.perf_counter() - began
    watch = PaintWatch(window)
    window.alerts.table.viewport().installEventFilter(watch)
    window.resize(1280, 800)
    window.show()
    model = window.alerts.model
    pump(app, lambda: model.rowCount() > 0)
    arrived = time.perf_counter()
    pump(app, lambda: bool(painted) and painted[-1] >= arrived, 5.0)  # the rows that arrived, painted
    figures["first_paint"] = painted[-1] - began
    return window, source, figures


def open_and_page(app: Any, url: str) -> tuple[int, dict[str, float], list[dict[str, Any]]]:
    """One window opening: first paint, a page turn, 25 more, a host filter; and the bodies it sent."""
    window, source, figures = open_first_page(app, url)
    model = window.alerts.model
    total = model.total
    table = window.alerts.table
    for name, turns in (("page_turn", 1), ("deep_turn", 25)):  # the 2nd page; then the 27th
        for _turn in range(turns):
            before = model.rowCount()
            began = time.perf_counter()
            table.scrollToBottom()
            pump(app, lambda before=before: model.rowCount() > before)
            figures[name] = time.perf_counter() - began
            if source.central is not None:  # of which the store's answer (sent -> answered)
                sent, answered, _parsed = source.central.timings[-1]
                figures[f"{name}_store"] = answered - sent
    host = "ws-0042"
    began = time.perf_counter()
    window.alerts.host.addItem(host, host)  # the aggregation's list may still be on its way
    window.alerts.host.setCurrentIndex(window.alerts.host.findData(host))
    pump(app, lambda: model.rowCount() > 0 and window.alerts.model.host == host)
    figures["host_filter"] = time.perf_counter() - began
    window.close()
    return total, figures, source.requests()


def markdown(docs: int, hosts: int, load_seconds: float, r: dict[str, Any], loadavg: tuple[float, ...],
             rss_mb: float, runs: int) -> str:
    return "\n".join([
        "## Fleet view over the central index (`bench/fleet_view.py`)",
        "",
        f"{docs:,} ECS alert documents from {hosts:,} hosts in osmem-server (in-memory, OpenSearch-compatible, "
        f"the shipped mappings), loaded over `_bulk` in {load_seconds:.0f} s ({docs / load_seconds:,.0f} docs/s); "
        f"load average {loadavg[0]:.2f} / {loadavg[1]:.2f} / {loadavg[2]:.2f} at the start; offscreen Qt; "
        f"median of {runs} window openings. Pages of 200 alerts by `search_after` on (@timestamp, event.id); "
        f"{r['requests']} search requests sent, none with a `from` beyond {r['max_from']}.",
        "",
        "| measure | result |",
        "|---|---|",
        f"| window built (no request waited for) | {r['built'] * 1000:.0f} ms |",
        f"| window built -> first page of alerts painted (count of {r['total']:,} with it) | "
        f"{r['first_paint'] * 1000:.0f} ms |",
        f"| page turn: scrolled to the end of the list -> the next 200 rows there (the store's answer: "
        f"{r['page_turn_store'] * 1000:.0f} ms) | {r['page_turn'] * 1000:.0f} ms |",
        f"| page turn 27 pages down, 5,400 rows listed (the store's answer: {r['deep_turn_store'] * 1000:.0f} ms) | "
        f"{r['deep_turn'] * 1000:.0f} ms |",
        f"| host filter (one host of {hosts:,}) -> its first page listed | {r['host_filter'] * 1000:.0f} ms |",
        f"| osmem-server memory (max RSS) holding the index | {rss_mb:,.0f} MB |",
        f"| store alone: first page with its count (`track_total_hits`) | {r['store_first_page'] * 1000:.0f} ms |",
        f"| store alone: next page (`search_after`) | {r['store_next_page'] * 1000:.0f} ms |",
        f"| store alone: host and rule lists (terms aggregations) | {r['store_choices'] * 1000:.0f} ms |",
        "",
        "The window is built without waiting for the store: the first page is asked in the fleet view's worker "
        "thread and painted when it arrives; the list grows by a page when its end is scrolled into view, "
        "and no request carries a `from` beyond 0. The host and rule lists (terms aggregations) are asked "
        "after the first page, on a connection and worker of their own, so they never delay it; the second "
        "page can share the store's CPU with them. What a page costs beyond the store's answer is the app's "
        "part (parsing 200 documents, inserting and painting rows: about 15 ms). osmem-server keeps "
        "documents in memory and scans them for every sorted query and aggregation, so its answers grow "
        "with the index; OpenSearch and Elasticsearch answer the same `search_after` query from doc values "
        "without such a scan. Its memory (about 80 KB per alert document with its evidence) also sets the "
        f"size here: {docs:,} documents, not the 1,000,000 `--docs` defaults to, which would need about "
        "80 GB on this 23 GB machine (with a CI run beside it). The local view's figures "
        "(`bench/gui_alerts.py`, above) count the app's process start; these start with the window. "
        "A real OpenSearch or Elasticsearch cluster was not run here.",
    ])


def osmem_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    from osmem_server import OsmemServer

    loadavg = os.getloadavg()
    server = OsmemServer.start(japanese=False)
    try:
        install_template(server.url)
        seconds = load(server.url, args.docs, args.hosts)
        figures = {**measure(server.url, args.runs), **store_times(server.url, args.runs)}
        text = markdown(args.docs, args.hosts, seconds, figures, loadavg, osmem_rss_mb(server.pid), args.runs)
    finally:
        server.close()
        if server.process.stdout is not None:
            server.process.stdout.close()
    print(text)
    if args.write_docs:
        from bench.sections import write_section
        write_section("fleet-view", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
