"""Run the real `weightwarden` console script and wait on conditions, never on luck."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

WEIGHTWARDEN = str(Path(sys.executable).with_name("weightwarden"))
T = TypeVar("T")


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WEIGHTWARDEN, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kwargs)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_for(condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy, or fail naming what we waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def write_config(path: Path, *, data_dir: Path, protected: list[Path], watched: list[Path],
                 settle: float = 0.2) -> Path:
    roots = ", ".join(json.dumps(str(p)) for p in protected)
    watch = ", ".join(json.dumps(str(p)) for p in watched)
    path.write_text(
        f'[agent]\ndata_dir = "{data_dir}"\n\n'
        f"[inventory]\nroots = [{roots}]\n\n"
        f"[watch]\nroots = [{watch}]\nsettle_seconds = {settle}\n\n"
        "[store]\nflush_seconds = 0.05\n"
    )
    return path
