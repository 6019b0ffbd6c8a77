"""sd_notify(3) without libsystemd: tell systemd the agent is ready, alive, or stopping.

The protocol is one datagram of newline-separated `KEY=VALUE` assignments sent to the AF_UNIX socket
named by $NOTIFY_SOCKET (a path, or an abstract name written with a leading `@`). Outside systemd the
variable is unset and every call is a cheap no-op, so the agent calls these unconditionally.

The unit (installer/linux/weightwarden.service) sets Type=notify and WatchdogSec=; systemd then passes
$WATCHDOG_USEC (and $WATCHDOG_PID, the pid meant to ping) and restarts the agent when pings stop.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"


def notify(*assignments: str) -> bool:
    """Send `KEY=VALUE` lines to systemd; True when a datagram was sent, False outside systemd or on error."""
    address = _socket_address(os.environ.get(NOTIFY_SOCKET_ENV, ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(assignments).encode("utf-8"))
    except OSError as error:
        # systemd went away or the socket is not ours to use: the agent carries on regardless.
        log.debug("sd_notify to %r failed: %s", address, error)
        return False
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def stopping(status: str = "") -> bool:
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half the configured timeout), or None when no watchdog is asked for.

    As sd_watchdog_enabled(3): $WATCHDOG_PID, when set, must be our pid (the variable leaked into a child
    otherwise), and $WATCHDOG_USEC must be a positive integer.
    """
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000 / 2


class WatchdogPinger:
    """Pings at most once per interval; `tick()` is called from the agent's main loop, so a stuck loop
    stops the pings and systemd restarts the agent."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = watchdog_interval() if interval is None else interval
        self._last: float | None = None

    def tick(self, now: float) -> bool:
        if self.interval is None:
            return False
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return watchdog()


def _socket_address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # abstract namespace
    if value.startswith("/"):
        return value
    return None  # vsock and other forms: not ours to speak
