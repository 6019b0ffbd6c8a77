"""The agent as a subprocess for the forwarding tests: its config, its start, and a bounded stop.

The config ticks fast (a heartbeat every 0.5 s, a checkpoint every second) and, besides the destinations
a test names, always has `down`: a syslog destination nothing listens on, so a backlog and a connect error
are there to report.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.agent.cli.helpers import WEIGHTWARDEN
from tests.agent.forward.receivers import free_port

STOP_SECONDS = 90  # SIGTERM to exit; a clean shutdown takes seconds


def write_agent_config(tmp_path: Path, models: Path, watched: Path, destinations: str) -> Path:
    """tmp_path/config.toml: data in tmp_path/data, `models` inventoried, `watched` watched, the
    `destinations` ([forward.<name>] tables, TOML) and `down`."""
    config = tmp_path / "config.toml"
    config.write_text(f"""[agent]
data_dir = "{tmp_path / 'data'}"
heartbeat_seconds = 0.5
checkpoint_seconds = 1
[inventory]
roots = ["{models}"]
[watch]
roots = ["{watched}"]
[store]
flush_seconds = 0.05
{destinations.strip()}
[forward.down]
type = "syslog"
transport = "tcp"
address = "127.0.0.1"
port = {free_port()}
retry_initial_seconds = 0.1
retry_max_seconds = 0.5
timeout_seconds = 2
""")
    return config


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`weightwarden agent --config <config>`, its stderr appended to `log`."""
    with log.open("ab") as stderr:
        # PYTHONFAULTHANDLER: if shutdown ever hangs, stop_agent's SIGABRT dumps every thread's stack into the log.
        return subprocess.Popen([WEIGHTWARDEN, "agent", "--config", str(config)], stdout=subprocess.DEVNULL,
                                stderr=stderr, env={**os.environ, "PYTHONFAULTHANDLER": "1"})


def stop_agent(agent: subprocess.Popen[bytes], log: Path) -> int:
    """SIGTERM and wait for the exit code; an agent still running after STOP_SECONDS is aborted and the
    test fails with the stacks of its threads (from `log`)."""
    agent.send_signal(signal.SIGTERM)
    try:
        return agent.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        agent.send_signal(signal.SIGABRT)
        agent.wait(timeout=30)
        raise AssertionError(f"the agent did not stop within {STOP_SECONDS} s of SIGTERM; its threads:\n"
                             + log.read_text()[-6000:]) from None
