"""`weightwarden-gui` entry point: screenshot mode in-process (offscreen) and configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from weightwarden.gui.main import main


@pytest.mark.parametrize("view", ["alerts", "detail"])
def test_screenshot_mode_writes_a_1280x800_png(tmp_path: Path, database: Path, view: str) -> None:
    out = tmp_path / f"{view}.png"
    assert main(["--db", str(database), "--screenshot", str(out), "--view", view]) == 0
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1280, 800)


def test_screenshot_of_a_missing_database_still_renders(tmp_path: Path) -> None:
    out = tmp_path / "missing.png"
    assert main(["--db", str(tmp_path / "none.db"), "--screenshot", str(out), "--view", "overview"]) == 0
    assert QImage(str(out)).width() == 1280


def test_bad_config_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[gui]\nnotify_severity = 12\n")
    assert main(["--config", str(config), "--screenshot", str(tmp_path / "x.png")]) == 2
    assert "notify_severity" in capsys.readouterr().err
