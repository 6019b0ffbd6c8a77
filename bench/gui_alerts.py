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
    from weightwarden.agent.alert_evidence import CopyEvidence
    from weightwarden.agent.events import Alert, Destination, ProcessInfo, utc_now
    from weightwarden.agent.store import Store

    path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(path)
    start = utc_now() - timedelta(days=60)
    names = ("rsync", "python3", "firefox", "aws", "cp", "scp", "rclone", "curl")
    rules = ("model-copy", "model-egress-budget", "canary-model-accessed", "bulk-model-collection",
             "unexpected-app-opened-model")
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
                evidence=CopyEvidence(size=4 << 30),  # about the size of the old {matched_on, size} evidence
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

    # jump: drag the scrollbar to the middle, then to the end; time until the rows there are painted
    table = window.alerts.table
    jumps = {}
    for name, fraction in (("middle", 0.5), ("end", 1.0), ("a quarter", 0.25)):
        pump(lambda: False, 0.1)
        bar = table.verticalScrollBar()
        painted.clear()
        began = time.perf_counter()
        bar.setValue(int(bar.maximum() * fraction))
        pump(lambda: bool(painted))
        shown = table.rowAt(table.viewport().height() // 2)
        jumps[name] = (time.perf_counter() - began, shown)
    # sequential scroll: page down 100 screens from the middle
    table.verticalScrollBar().setValue(table.verticalScrollBar().maximum() // 2)
    pump(lambda: False, 0.1)
    began = time.perf_counter()
    for _ in range(100):
        painted.clear()
        table.verticalScrollBar().triggerAction(table.verticalScrollBar().SliderAction.SliderPageStepAdd)
        pump(lambda: bool(painted))
    page_down = (time.perf_counter() - began) / 100
    rss_scrolled = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fetches = model.fetches

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
                      "total": total, "jumps": jumps, "page_down": page_down,
                      "fetches": fetches, "filters": filters, "latencies": latencies}))


def mismatched_queries(db: Path) -> list[tuple[str, float]]:
    """Filter on one column, order by another: the store's page query alone, best of three."""
    import sqlite3

    from weightwarden.agent.store.review_queries import AlertFilter, AlertSort, alert_count, alert_page_at

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    severe = AlertFilter(min_severity=7)
    middle = alert_count(conn, severe) // 2
    cases = [("severity >= 7, newest first: first page", severe, AlertSort("time", True), 0),
             (f"severity >= 7, newest first: jump to the middle (row {middle:,})", severe, AlertSort("time", True),
              middle),
             ("severity >= 7, by rule: first page", severe, AlertSort("rule", False), 0),
             ("needs review (open), by severity: first page", AlertFilter(statuses=("open",)),
              AlertSort("severity", True), 0)]
    found = []
    for label, flt, sort, offset in cases:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            alert_page_at(conn, flt, sort, offset)
            best = min(best, time.perf_counter() - started)
        found.append((label, best))
    conn.close()
    return found


def markdown(n: int, r: dict, db_size: int) -> str:
    lines = [
        "## Desktop app on a large log (`bench/gui_alerts.py`)",
        "",
        f"{n:,} alerts in the database ({db_size / 1e6:,.0f} MB with the FTS5 index); load average "
        f"{r['load'][0]:.2f} / {r['load'][1]:.2f} / {r['load'][2]:.2f} at the start; offscreen Qt, a fresh "
        "app process per run. The alerts table is windowed: the scrollbar spans every alert, and pages of "
        "200 rows are read where the view looks (by position: an OFFSET over index entries), 12 pages kept.",
        "",
        "| measure | result |",
        "|---|---|",
        "| launch to first painted alerts table (process start, imports, count, first page) | "
        f"{r['first_paint']:.2f} s |",
        f"| the same for an empty PySide6 table (Python + Qt start-up alone, for comparison) | "
        f"{r['baseline_paint']:.2f} s |",
        f"| app memory (max RSS) at first paint | {r['rss_first_mb']:.0f} MB |",
    ]
    for name, (seconds, row) in r["jumps"].items():
        lines.append(f"| drag the scrollbar to {name}: rows painted (row {row:,} in view) | {seconds * 1000:.0f} ms |")
    lines += [
        f"| page down, 100 screens in a row from the middle (per screen) | {r['page_down'] * 1000:.0f} ms |",
        f"| app memory after the jumps and 100 screens ({r['fetches']} pages of 200 read in all) | "
        f"{r['rss_scrolled_mb']:.0f} MB |",
    ]
    for text, (seconds, matches) in r["filters"].items():
        lines.append(f"| filter `{text}` ({matches:,} matches; count + first page) | {seconds * 1000:.0f} ms |")
    lat = sorted(r["latencies"])
    lines.append(f"| new alert stored -> row shown (data_version poll every 100 ms; median of {len(lat)}) | "
                 f"{lat[len(lat) // 2] * 1000:.0f} ms (max {lat[-1] * 1000:.0f} ms) |")
    for label, seconds in r.get("mismatched", []):
        lines.append(f"| query only: {label} | {seconds * 1000:.0f} ms |")
    lines += ["", "A jump reads one page by position: `review_queries.alert_page_at` counts the OFFSET over index "
              "entries only (the sequence index for time, FTS5 rowids for text, or the (latest, column, sequence) "
              "indexes of migration 0010 for the other orders), then reads the page's 200 rows; counted over the "
              "table's rows instead, the same OFFSET took 6-16 s. A filter on one column with the order on another "
              "(\"query only\" rows: the store's page query alone) is covered by no single index: a severity "
              "floor walks the order's own index and tests each row's severity (first pages in milliseconds; a "
              "jump deep into the matches still reads every row before it, about half a second), where SQLite "
              "on its own sorted every match first (about 1 s for any page). "
              "Scrolling reads a page every seven screens or so. The row count is exact "
              "without free text; with free text it stops at 100,000 (\"more than 100,000\"), since counting "
              "every match of a common word costs seconds. A text filter is one FTS5 match streamed in rowid "
              "order and stopped after one page. The poll interval in the app is 500 ms "
              "(`DataSource(poll_ms=...)`), so expect about 250 ms more on average for a new alert there. Live "
              "updates and free text test the one-row-per-incident flag as `+latest = 1`, so the rowid range or "
              "FTS5 drives the scan instead of a (latest, ...) index (that index choice had made `alerts_after` "
              "180 ms and text filters 3-10x slower); a text count takes the few superseded incident states "
              "off the FTS5 count instead of joining every match."]
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
    load = os.getloadavg()
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
    figures["load"] = load
    figures["mismatched"] = mismatched_queries(db)
    text = markdown(args.alerts, figures, db.stat().st_size)
    print(text)
    if args.write_docs:
        from bench.sections import write_section
        write_section("gui", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
