"""Real screenshots under a real X server (Xvfb): the app starts on xcb, renders each view, and the
PNG it writes is a picture, not a blank or single-colour frame."""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

pytestmark = pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run not installed "
                                "(bash installer/dev.sh test installs it)")

GUI = str(Path(sys.executable).with_name("weightwarden-gui"))


def pixel_stats(path: Path) -> tuple[float, int]:
    """(variance of grey levels, distinct colours) over a grid of samples."""
    image = QImage(str(path))
    greys, colours = [], set()
    for y in range(0, image.height(), 8):
        for x in range(0, image.width(), 8):
            rgb = image.pixel(x, y) & 0xFFFFFF
            colours.add(rgb)
            greys.append(((rgb >> 16) + ((rgb >> 8) & 0xFF) + (rgb & 0xFF)) / 3)
    return statistics.pvariance(greys), len(colours)


VIEWS = ("overview", "alerts", "detail", "models", "sync")


def test_screenshots_under_xvfb_are_not_blank(tmp_path: Path, database: Path) -> None:
    """One X server for all views (starting one costs seconds); each view in a fresh app process."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    commands = " && ".join(
        f"{shlex.quote(GUI)} --db {shlex.quote(str(database))} --screenshot {shlex.quote(str(tmp_path / view))}.png"
        f" --view {view}" for view in VIEWS)
    result = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24", "sh", "-c",
                             f'test "$QT_QPA_PLATFORM" = "" && test -n "$DISPLAY" && {commands}'],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for view in VIEWS:
        image = QImage(str(tmp_path / f"{view}.png"))
        assert (image.width(), image.height()) == (1280, 800), view
        variance, colours = pixel_stats(tmp_path / f"{view}.png")
        assert variance > 100 and colours > 20, (view, variance, colours)
