"""Small widgets shared by the views: a banner, number cards, a bar chart, a ranked list, a row table."""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QAbstractItemView, QFrame, QLabel, QSizePolicy, QTableView, QVBoxLayout, QWidget


def row_table(model: QAbstractItemModel) -> QTableView:
    """A table of records the way every view shows one: whole rows selected, one at a time, striped, no grid
    and no row numbers."""
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.verticalHeader().hide()
    return table


class Banner(QLabel):
    """One line on top of the window: what state the app is in (ok, read-only, no database)."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("banner")
        self.setWordWrap(True)
        self.level = "ok"

    def show_state(self, level: str, text: str) -> None:
        self.level = level
        self.setProperty("level", level)
        self.setText(text)
        self.style().unpolish(self)
        self.style().polish(self)


class Card(QFrame):
    def __init__(self, title: str, value: str = "–", note: str = "") -> None:
        super().__init__()
        self.setObjectName("card")
        layout = QVBoxLayout(self)
        self.title = QLabel(title)
        self.title.setObjectName("cardTitle")
        self.value = QLabel(value)
        self.value.setObjectName("cardValue")
        self.note = QLabel(note)
        self.note.setStyleSheet("color: #777")
        self.note.setWordWrap(True)
        for widget in (self.title, self.value, self.note):
            layout.addWidget(widget)

    def set(self, value: str, note: str = "", colour: str | None = None) -> None:
        self.value.setText(value)
        self.note.setText(note)
        self.value.setStyleSheet(f"color: {colour}" if colour else "")


class BarChart(QWidget):
    """Stacked bars (all alerts, high-severity part highlighted) with labels under every few bars."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[tuple[str, int, int]] = []
        self.setMinimumHeight(180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_bars(self, bars: list[tuple[str, int, int]]) -> None:
        self.bars = bars
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        left, bottom, top, right = 44, 26, 12, 12
        width, height = self.width() - left - right, self.height() - top - bottom
        if not self.bars or width <= 0 or height <= 0:
            painter.setPen(QColor("#888"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No alerts in this period")
            return
        peak = max(max(b[1] for b in self.bars), 1)
        painter.setPen(QPen(QColor("#eceff1")))
        for step in range(5):
            y = top + height - height * step / 4
            painter.drawLine(left, int(y), left + width, int(y))
            painter.setPen(QColor("#888"))
            painter.drawText(QRectF(0, y - 8, left - 6, 16), Qt.AlignmentFlag.AlignRight, f"{round(peak * step / 4):,}")
            painter.setPen(QPen(QColor("#eceff1")))
        slot = width / len(self.bars)
        label_every = max(1, int(len(self.bars) / 8 + 0.999))
        for i, (name, total, high) in enumerate(self.bars):
            x = left + i * slot + slot * 0.15
            bar_width = slot * 0.7
            total_height = height * total / peak
            high_height = height * high / peak
            painter.fillRect(QRectF(x, top + height - total_height, bar_width, total_height), QColor("#9fa8da"))
            painter.fillRect(QRectF(x, top + height - high_height, bar_width, high_height), QColor("#ef6c00"))
            if i % label_every == 0:
                painter.setPen(QColor("#666"))
                painter.drawText(QRectF(x - slot, top + height + 4, bar_width + 2 * slot, 18),
                                 Qt.AlignmentFlag.AlignHCenter, name)
        painter.end()


class RankedList(QFrame):
    """A titled list of (name, count) with bars proportional to the counts."""

    ROW = 24

    def __init__(self, title: str) -> None:
        super().__init__()
        self.setObjectName("card")
        self.title = title
        self.items: list[tuple[str, int]] = []
        self.setMinimumHeight(60 + 5 * self.ROW)

    def text(self) -> str:
        return "\n".join(f"{count} {name}" for name, count in self.items)

    def set_items(self, items: list[tuple[str, int]]) -> None:
        self.items = items
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = painter.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        painter.setFont(font)
        painter.setPen(QColor("#333"))
        painter.drawText(QRectF(12, 8, self.width() - 24, 22), Qt.AlignmentFlag.AlignLeft, self.title)
        font.setBold(False)
        font.setPointSizeF(font.pointSizeF() / 1.1)
        painter.setFont(font)
        if not self.items:
            painter.setPen(QColor("#888"))
            painter.drawText(QRectF(12, 40, self.width() - 24, 20), Qt.AlignmentFlag.AlignLeft, "nothing yet")
            painter.end()
            return
        peak = max(count for _, count in self.items) or 1
        bar_space = max(60.0, (self.width() - 24) * 0.45)
        for i, (name, count) in enumerate(self.items):
            y = 40 + i * self.ROW
            width = max(3.0, bar_space * count / peak)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#7986cb"))
            painter.drawRoundedRect(QRectF(12, y + 3, width, self.ROW - 8), 3, 3)
            painter.setPen(QColor("#1a1a1a"))
            painter.drawText(QRectF(20 + bar_space, y, self.width() - bar_space - 32, self.ROW),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"{count:,}   {name}")
        painter.end()
