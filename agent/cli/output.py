"""Terminal output helpers: errors that exit with the right code, tables, sizes, times, a progress line."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TextIO

from weightwarden.agent.config import Config, load_config
from weightwarden.agent.events import parse_time, utc_now

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A user mistake: one line on stderr, exit code 2, never a traceback."""


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--config and --mode, shared by every command that reads the configuration."""
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: the one of the mode)")
    parser.add_argument("--mode", choices=("user", "system"),
                        help="user: per-user config and data in your home; system: /etc and /var/lib "
                             "(default: system when root, else user, unless the config says otherwise)")


def config_from(args: argparse.Namespace) -> Config:
    return load_config(args.config, mode=args.mode)


_RELATIVE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> datetime:
    """`--since`: an RFC 3339 time (`2026-11-29T10:00:00Z`), a date, or an age like `30m`, `2h`, `7d`."""
    match = _RELATIVE.match(text)
    if match:
        return utc_now() - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        return parse_time(text.strip())
    except ValueError:
        raise UsageError(f"--since: cannot read {text!r}; use an RFC 3339 time or an age like 30m, 2h, 7d") from None


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def print_table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: TextIO = sys.stdout) -> None:
    """A plain aligned table; the last column takes what is left of the terminal and is never cut."""
    if not rows:
        return
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers) - 1)]
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        out.write("  ".join([*cells, str(row[-1])]).rstrip() + "\n")


class ProgressLine:
    """A one-line, rate-limited progress display on a terminal's stderr; silent when not a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, *, enabled: bool = True, interval: float = 0.1) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.interval = interval
        self._last = 0.0
        self._shown = False

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r" + text[:width].ljust(width))
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((100, 20)).columns - 1) + "\r")
            self.stream.flush()
