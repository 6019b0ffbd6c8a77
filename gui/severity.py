"""Severity bands, colours and icons: one place so the table, detail, chart and report agree."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

# (lowest severity, name, colour): CEF's 0..10 in four bands.
BANDS = ((9, "critical", "#c62828"), (7, "high", "#ef6c00"), (4, "medium", "#f9a825"), (0, "low", "#607d8b"))
STATUS_COLOURS = {"open": "#c62828", "acknowledged": "#ef6c00", "resolved": "#2e7d32",
                  "false-positive": "#607d8b"}


def band(severity: int) -> tuple[str, str]:
    """(name, colour) of the band a severity falls in."""
    for low, name, colour in BANDS:
        if severity >= low:
            return name, colour
    return BANDS[-1][1], BANDS[-1][2]


def label(severity: int) -> str:
    return f"{severity} {band(severity)[0]}"


@cache
def icon(severity: int) -> QIcon:
    """A filled disc in the band's colour with the number in it."""
    colour = QColor(band(severity)[1])
    pixmap = QPixmap(32, 32)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(colour)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(QRectF(2, 2, 28, 28))
    painter.setPen(QColor("white"))
    font = painter.font()
    font.setBold(True)
    font.setPixelSize(16)
    painter.setFont(font)
    painter.drawText(QRectF(0, 0, 32, 32), Qt.AlignmentFlag.AlignCenter, str(severity))
    painter.end()
    return QIcon(pixmap)
