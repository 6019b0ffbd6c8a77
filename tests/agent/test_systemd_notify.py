"""sd_notify over a real AF_UNIX datagram socket standing in for systemd's notification socket."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from weightwarden.agent import systemd_notify


@pytest.fixture
def systemd_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield receiver
    receiver.close()


def received(receiver: socket.socket) -> list[str]:
    return receiver.recv(4096).decode().split("\n")


def test_ready_watchdog_and_stopping_reach_the_socket(systemd_socket: socket.socket) -> None:
    assert systemd_notify.ready("system mode, full coverage")
    assert received(systemd_socket) == ["READY=1", "STATUS=system mode, full coverage"]
    assert systemd_notify.watchdog()
    assert received(systemd_socket) == ["WATCHDOG=1"]
    assert systemd_notify.stopping()
    assert received(systemd_socket) == ["STOPPING=1"]


def test_abstract_socket_names_start_with_an_at_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"weightwarden-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd_notify.notify("READY=1")
        assert received(receiver) == ["READY=1"]


def test_outside_systemd_every_call_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd_notify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd_notify.watchdog() is False  # logged at debug, never raised
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert systemd_notify.stopping() is False


def test_watchdog_interval_is_half_the_timeout_and_only_for_our_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd_notify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert systemd_notify.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd_notify.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for our parent
    assert systemd_notify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert systemd_notify.watchdog_interval() is None


def test_pinger_pings_once_per_interval(systemd_socket: socket.socket) -> None:
    pinger = systemd_notify.WatchdogPinger(interval=10.0)
    assert pinger.tick(100.0)
    assert not pinger.tick(105.0)
    assert pinger.tick(110.0)
    assert received(systemd_socket) == ["WATCHDOG=1"]
    assert received(systemd_socket) == ["WATCHDOG=1"]


def test_pinger_without_a_watchdog_sends_nothing(monkeypatch: pytest.MonkeyPatch,
                                                 systemd_socket: socket.socket) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd_notify.WatchdogPinger().tick(1.0) is False
