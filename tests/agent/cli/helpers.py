"""Run the real `weightwarden` console script and wait on conditions, never on luck."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.waiting import wait_for  # noqa: F401 - re-exported for the tests of this folder

WEIGHTWARDEN = str(Path(sys.executable).with_name("weightwarden"))


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WEIGHTWARDEN, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kwargs)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]




# A system-mode agent with filesystem marks sees every write on this machine, other people's test runs
# included (and their fixtures write byte-identical models). Tests that count every event or alert of
# their agent watch only their configured roots (inotify); tests/agent/sensors/test_agent_writes.py and
# test_fs_writes.py test the marks, counting only what they caused.
QUIET_WORLD = "\n[sensors]\nfile_marks = false\n"


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
