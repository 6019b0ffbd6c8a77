"""`weightwarden-gui`: the main window with the latest alerts from the local store (read-only).

The full review app (lazy alert model, detail, models, overview, sync) is built on this window.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QTableView, QVBoxLayout, QWidget

from weightwarden.agent.config import load_config
from weightwarden.agent.store import Store, StoreError

COLUMNS = (("Time", "time"), ("Severity", "severity"), ("Rule", "rule"), ("Model", "model"),
           ("What", "message"))
Index = QModelIndex | QPersistentModelIndex


class AlertsModel(QAbstractTableModel):
    def __init__(self, alerts: list[dict[str, Any]]) -> None:
        super().__init__()
        self._alerts = alerts

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._alerts)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        value = self._alerts[index.row()].get(COLUMNS[index.column()][1])
        return "" if value is None else str(value)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][0]
        return None


class MainWindow(QMainWindow):
    def __init__(self, database_path: str) -> None:
        super().__init__()
        self.setWindowTitle("Weightwarden")
        self.resize(1280, 800)
        central = QWidget()
        layout = QVBoxLayout(central)
        self.banner = QLabel()
        layout.addWidget(self.banner)
        self.table = QTableView()
        layout.addWidget(self.table)
        self.setCentralWidget(central)
        alerts: list[dict[str, Any]] = []
        try:
            store = Store(database_path, read_only=True)
            try:
                alerts = store.alerts(limit=10_000)
            finally:
                store.close()
            self.banner.setText(f"{len(alerts)} alerts in {database_path}")
        except StoreError as error:
            self.banner.setText(f"No alerts to show: {error}")
        self.model = AlertsModel(list(reversed(alerts)))
        self.table.setModel(self.model)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.statusBar().showMessage(database_path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="weightwarden-gui")
    parser.add_argument("--db", metavar="PATH", help="database to show (default: the agent's)")
    parser.add_argument("--config", metavar="FILE")
    parser.add_argument("--mode", choices=("user", "system"), help="whose database to show by default")
    args = parser.parse_args(argv)
    database = args.db or load_config(args.config, mode=args.mode).database_path
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(database)
    window.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
