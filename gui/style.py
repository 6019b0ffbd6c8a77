"""The app's look: a light, calm palette with one accent; severity colours stand out against it."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

ACCENT = "#3949ab"

STYLESHEET = f"""
QMainWindow, QWidget#page {{ background: #f5f6f8; }}
QTabWidget::pane {{ border: none; background: #f5f6f8; }}
QTabBar::tab {{ padding: 8px 18px; margin-right: 2px; border: none; background: transparent;
               color: #555; font-weight: 600; }}
QTabBar::tab:selected {{ color: {ACCENT}; border-bottom: 3px solid {ACCENT}; }}
QTableView, QTreeView, QListWidget {{ background: white; border: 1px solid #dde1e7; border-radius: 6px;
    gridline-color: #eef0f3; selection-background-color: #e8eaf6; selection-color: #1a1a1a;
    alternate-background-color: #fafbfc; }}
QHeaderView::section {{ background: #eef0f4; border: none; border-bottom: 1px solid #dde1e7;
    padding: 6px 8px; font-weight: 600; color: #444; }}
QLineEdit, QComboBox, QPlainTextEdit, QSpinBox {{ background: white; border: 1px solid #cfd4dc;
    border-radius: 5px; padding: 4px 6px; }}
QLineEdit:focus, QPlainTextEdit:focus {{ border-color: {ACCENT}; }}
QPushButton {{ background: white; border: 1px solid #cfd4dc; border-radius: 5px; padding: 5px 12px; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #9aa0a6; background: #f1f2f4; }}
QPushButton#primary {{ background: {ACCENT}; color: white; border-color: {ACCENT}; font-weight: 600; }}
QPushButton#primary:disabled {{ background: #9fa8da; border-color: #9fa8da; }}
QFrame#card {{ background: white; border: 1px solid #dde1e7; border-radius: 8px; }}
QLabel#cardValue {{ font-size: 26px; font-weight: 700; color: #1a1a1a; }}
QLabel#cardTitle {{ color: #666; font-weight: 600; }}
QLabel#sectionTitle {{ font-size: 14px; font-weight: 700; color: #333; }}
QLabel#banner {{ padding: 8px 12px; border-radius: 6px; font-weight: 600; }}
QLabel#banner[level="ok"] {{ background: #e8f5e9; color: #1b5e20; }}
QLabel#banner[level="warn"] {{ background: #fff3e0; color: #8a4b00; }}
QLabel#banner[level="error"] {{ background: #ffebee; color: #b71c1c; }}
QTextBrowser {{ background: white; border: 1px solid #dde1e7; border-radius: 6px; }}
"""


def apply(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setStyleSheet(STYLESHEET)
