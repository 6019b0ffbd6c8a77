"""The agent under a stand-in for systemd: READY=1 once running, WATCHDOG=1 pings, STOPPING=1 on SIGTERM,
and the data directory stamped with its version (agent/systemd_notify.py, agent/version_stamp.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.agent.cli.helpers import WEIGHTWARDEN, write_config
from weightwarden.agent import __version__

pytestmark = pytest.mark.e2e


def test_agent_speaks_sd_notify_and_stamps_its_data(tmp_path: Path) -> None:
    for name in ("models", "elsewhere", "data"):
        (tmp_path / name).mkdir()
    config = write_config(tmp_path / "config.toml", data_dir=tmp_path / "data", protected=[tmp_path / "models"],
                          watched=[tmp_path / "elsewhere"])
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    # A 1 s watchdog: the agent pings every 0.5 s from its main loop.
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    log = (tmp_path / "agent.log").open("wb")
    process = subprocess.Popen([WEIGHTWARDEN, "agent", "--config", str(config)], env=env,
                               stdout=subprocess.DEVNULL, stderr=log)
    try:
        messages: list[str] = []

        def receive_until(wanted: str) -> None:
            while wanted not in messages:
                messages.extend(notify.recv(4096).decode().split("\n"))  # times out after 60 s: fails

        receive_until("READY=1")
        assert any(m.startswith("STATUS=user mode") or m.startswith("STATUS=system mode") for m in messages)
        receive_until("WATCHDOG=1")
        messages.remove("WATCHDOG=1")
        receive_until("WATCHDOG=1")  # and again: it keeps pinging
        process.send_signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        notify.close()
        log.close()
    assert (tmp_path / "data" / "weightwarden.version").read_text() == f"{__version__}\n"
