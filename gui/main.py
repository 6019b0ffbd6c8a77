"""`weightwarden-gui`: the desktop app. Reads the store read-only; actions go through the agent's
control socket. `--screenshot FILE --view NAME` renders one view at 1280x800 into a PNG and exits
(tests and the README's screenshots use it).

`--central URL` (or `[gui] central_url`) opens the read-only fleet view instead: the alerts every host
forwarded to the central OpenSearch/Elasticsearch index (gui/fleet_window.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QEventLoop
from PySide6.QtWidgets import QApplication

from weightwarden.agent.config import ConfigError, load_config
from weightwarden.gui import style
from weightwarden.gui.app_window import VIEWS, MainWindow
from weightwarden.gui.central_source import CentralSource
from weightwarden.gui.fleet_window import FleetWindow
from weightwarden.gui.models.fleet_alerts import FleetAlertsModel

SCREENSHOT_SIZE = (1280, 800)
FLEET_SCREENSHOT_WAIT_MS = 15_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weightwarden-gui", description="Review Weightwarden alerts.")
    parser.add_argument("--db", metavar="PATH", help="database to show (default: the agent's)")
    parser.add_argument("--config", metavar="FILE")
    parser.add_argument("--mode", choices=("user", "system"), help="whose database to show by default")
    parser.add_argument("--minimized", action="store_true", help="start in the tray (used at login)")
    parser.add_argument("--screenshot", metavar="FILE", help="render a view into a PNG and exit")
    parser.add_argument("--central", metavar="URL",
                        help="open the read-only fleet view of the central OpenSearch/Elasticsearch "
                             "(default: [gui] central_url; empty: this machine's alerts)")
    parser.add_argument("--index", metavar="PATTERN", help="the fleet view's index pattern "
                                                             "(default: [gui] central_index)")
    parser.add_argument("--view", choices=(*VIEWS, "detail"), default="alerts", help="view for --screenshot")
    return parser


def settle(app: QCoreApplication, milliseconds: int = 300) -> None:
    """Let pending layout and paint events run (no window manager to wait for offscreen)."""
    deadline = QDeadlineTimer(milliseconds)
    while not deadline.hasExpired():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, mode=args.mode)
    except ConfigError as error:
        print(f"weightwarden-gui: configuration error:\n{error}", file=sys.stderr)
        return 2
    database = args.db or config.database_path
    if args.screenshot and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Weightwarden")
    style.apply(app)
    central = args.central if args.central is not None else config.gui.central_url
    if central:
        fleet = FleetWindow(CentralSource.from_config(config, central, args.index))
        if args.screenshot:
            return screenshot(app, fleet, args.view, args.screenshot)
        fleet.show()
        return int(app.exec())
    window = MainWindow(database, notify_severity=config.gui.notify_severity, config=config,
                        tray=not args.screenshot)
    if args.screenshot:
        return screenshot(app, window, args.view, args.screenshot)
    if args.minimized and window.tray is not None and window.tray.icon is not None:
        app.setQuitOnLastWindowClosed(False)
    else:
        window.show()
    return int(app.exec())


def screenshot(app: QApplication, window: MainWindow | FleetWindow, view: str, path: str) -> int:
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    if isinstance(window, FleetWindow):  # the fleet's first page (or its error) before the picture
        deadline = QDeadlineTimer(FLEET_SCREENSHOT_WAIT_MS)
        model = window.alerts.model
        while isinstance(model, FleetAlertsModel) and model.loading and not deadline.hasExpired():
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if view == "overview":
            window.overview.refresh()
    window.show_view(view)
    settle(app)
    ok = window.grab().save(path, "PNG")
    window.close()
    if not ok:
        print(f"weightwarden-gui: could not write {path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
