"""The app on a large log: launch to first painted table, memory, text filter, new-alert latency.

    .venv/bin/python -m bench.gui_alerts [--alerts 1000000] [--db PATH] [--write-docs]

The database is built once through the real store (FTS triggers included) and reused. Each figure is
measured in a fresh app process (offscreen Qt), so import and start-up costs are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

DEFAULT_DB = "/var/tmp/ww-bench/gui-alerts-{n}.db"


def build(path: Path, count: int) -> None:
    from weightwarden.agent.events import Alert, Destination, ProcessInfo, utc_now
    from weightwarden.agent.store import Store

    path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(path)
    start = utc_now() - timedelta(days=60)
    names = ("rsync", "python3", "firefox", "aws", "cp", "scp", "rclone", "curl")
    rules = ("model-copy", "egress-budget", "canary-touched", "bulk-collection", "browser-read")
    batch = 20_000
    began = time.monotonic()
    for first in range(0, count, batch):
        alerts = []
        for i in range(first, min(count, first + batch)):
            model = f"model-{i % 97}"
            alerts.append(Alert(
                rule_id=rules[i % len(rules)], title=f"Copy of protected model {model}", severity=(i * 7) % 11,
                message=f"/tmp/stage/{i}/weights.safetensors is a copy of /srv/models/{model}/model.safetensors",
                paths=(f"/srv/models/{model}/model.safetensors", f"/tmp/stage/{i}/weights.safetensors"),
                model=model, process=ProcessInfo(pid=1000 + i % 50_000, name=names[i % len(names)], user="ana"),
                destination=Destination(kind="temporary", path=f"/tmp/stage/{i}/weights.safetensors"),
                evidence={"matched_on": "quick_fingerprint", "size": 4 << 30},
                time=start + timedelta(seconds=i * 60 * 60 * 24 * 60 // max(count, 1))))
        store.write(alerts)
        done = min(count, first + batch)
        print(f"\r  built {done:,}/{count:,} alerts ({time.monotonic() - began:.0f} s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    store.close()


def baseline_child(start_wall: float) -> None:
    """Python + PySide6 alone: a QApplication and an empty table painted (what any Qt app pays)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEvent, QEventLoop, QObject
    from PySide6.QtWidgets import QApplication, QTableView

    app = QApplication(sys.argv[:1])
    painted: list[float] = []

    class PaintWatch(QObject):
        def eventFilter(self, _obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and not painted:
                painted.append(time.time())
            return False

    table = QTableView()
    watch = PaintWatch()
    table.viewport().installEventFilter(watch)
    table.show()
    while not painted:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
    print(json.dumps({"first_paint": painted[0] - start_wall}))


def child(db: str, start_wall: float) -> None:
    """Runs in the app process: measures and prints one JSON object."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QDeadlineTimer, QEvent, QEventLoop, QObject
    from PySide6.QtWidgets import QApplication

    from tests.gui.helpers import make_alert
    from weightwarden.agent.store import Store
    from weightwarden.gui import style
    from weightwarden.gui.app_window import MainWindow

    app = QApplication(sys.argv[:1])
    style.apply(app)
    painted: list[float] = []

    class PaintWatch(QObject):
        def eventFilter(self, _obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and not painted:
                painted.append(time.time())
            return False

    window = MainWindow(db, tray=False, poll_ms=100)
    watch = PaintWatch()
    window.alerts.table.viewport().installEventFilter(watch)
    window.show()

    def pump(until: callable, limit: float = 30.0) -> float:  # type: ignore[valid-type]
        began = time.perf_counter()
        deadline = QDeadlineTimer(int(limit * 1000))
        while not until() and not deadline.hasExpired():
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
        return time.perf_counter() - began

    pump(lambda: bool(painted))
    first_paint = painted[0] - start_wall
    rss_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = window.alerts.model
    total = model.total

    # scroll: fetch pages until 20,000 rows are loaded, as a reader dragging the scrollbar down would
    began = time.perf_counter()
    while model.rowCount() < 20_000 and model.canFetchMore():
        model.fetchMore()
    scroll_20k = time.perf_counter() - began
    window.alerts.table.scrollToBottom()
    pump(lambda: False, 0.2)
    rss_scrolled = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    filters = {}
    for text in ("firefox", "weights.safetensors", "stage/4242", "model-42"):
        began = time.perf_counter()
        window.alerts.search.setText(text)
        window.alerts.apply_filter()
        pump(lambda: False, 0.0)
        filters[text] = (time.perf_counter() - began, model.total)
    window.alerts.search.setText("")
    window.alerts.apply_filter()
    began = time.perf_counter()
    window.alerts.severity.setCurrentIndex(3)  # critical only
    filters["severity >= 9"] = (time.perf_counter() - began, model.total)
    window.alerts.severity.setCurrentIndex(0)

    latencies = []
    writer = Store(db)
    for n in range(5):
        before = model.rowCount()
        stored_at = time.perf_counter()
        writer.write([make_alert(900_000_000 + n, severity=9, minutes_ago=0)])
        latencies.append(pump(lambda before=before: model.rowCount() > before, 10.0) + 0 * stored_at)
        pump(lambda: False, 0.05)
    writer.close()
    window.close()
    print(json.dumps({"first_paint": first_paint, "rss_first_mb": rss_first, "rss_scrolled_mb": rss_scrolled,
                      "total": total, "scroll_20k": scroll_20k, "filters": filters, "latencies": latencies}))


def markdown(n: int, r: dict, db_size: int) -> str:
    lines = [
        "## Desktop app on a large log (`bench/gui_alerts.py`)",
        "",
        f"{n:,} alerts in the database ({db_size / 1e6:,.0f} MB with the FTS5 index); offscreen Qt, a fresh "
        "app process per run. The alerts table is lazy: keyset pages of 200 rows from the store.",
        "",
        "| measure | result |",
        "|---|---|",
        "| launch to first painted alerts table (process start, imports, count, first page) | "
        f"{r['first_paint']:.2f} s |",
        f"| the same for an empty PySide6 table (Python + Qt start-up alone, for comparison) | "
        f"{r['baseline_paint']:.2f} s |",
        f"| app memory (max RSS) at first paint | {r['rss_first_mb']:.0f} MB |",
        f"| scroll: fetch 20,000 rows page by page | {r['scroll_20k']:.2f} s |",
        f"| app memory after 20,000 rows loaded | {r['rss_scrolled_mb']:.0f} MB |",
    ]
    for text, (seconds, matches) in r["filters"].items():
        lines.append(f"| filter `{text}` ({matches:,} matches; count + first page) | {seconds * 1000:.0f} ms |")
    lat = sorted(r["latencies"])
    lines.append(f"| new alert stored -> row shown (data_version poll every 100 ms; median of {len(lat)}) | "
                 f"{lat[len(lat) // 2] * 1000:.0f} ms (max {lat[-1] * 1000:.0f} ms) |")
    lines += ["", "Start-up is dominated by imports, not by the database: opening the store and painting the first "
              "page of a million alerts takes about 0.5 s; importing the agent's store and config modules "
              "(sqlite-utils alone about 0.9 s, numpy 0.3 s) takes most of the rest. The row count is exact "
              "without free text; with free text it stops at 100,000 (\"more than 100,000\"), since counting "
              "every match of a common word costs seconds. A text filter is one FTS5 match streamed in rowid "
              "order and stopped after one page. The poll interval in the app is 500 ms "
              "(`DataSource(poll_ms=...)`), so expect about 250 ms more on average for a new alert there."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--db")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("DB", "START"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", metavar="START", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        baseline_child(float(args.baseline))
        return 0
    if args.child:
        child(args.child[0], float(args.child[1]))
        return 0
    db = Path(args.db or DEFAULT_DB.format(n=args.alerts))
    if not db.exists():
        print(f"building {db} ...", file=sys.stderr)
        build(db, args.alerts)
    from weightwarden.agent.store import Store
    Store(db).close()  # a database built by an older checkout gets the newer migrations first
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "bench.gui_alerts", "--child", str(db), str(started)],
                            capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[1])
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return 1
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    started = time.time()
    base = subprocess.run([sys.executable, "-m", "bench.gui_alerts", "--baseline", str(started)],
                          capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    figures["baseline_paint"] = json.loads(base.stdout.strip().splitlines()[-1])["first_paint"]
    text = markdown(args.alerts, figures, db.stat().st_size)
    print(text)
    if args.write_docs:
        from bench.sections import write_section
        write_section("gui", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
