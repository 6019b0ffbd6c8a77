"""The one interface every sensor has, and the counters `weightwarden status` shows.

A sensor translates OS activity into observations and decides nothing. It starts, stops, and reports a
`SensorStatus`: whether it runs, with what privilege, how much it saw, what it lost, and why it is
degraded or unavailable. Platform code stays behind this interface, so the agent picks sensors by what
the machine offers (see `weightwarden.agent.sensors.platform`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SensorStatus:
    name: str
    state: str  # running | degraded | unavailable | stopped
    method: str  # fanotify, proc-connector, psutil, sock_diag, watchdog, mountinfo, ...
    privilege: str  # root | user
    message: str = ""
    events: int = 0
    events_per_second: float = 0.0
    drops: int = 0  # overflows / lost messages seen (each followed by a rescan)
    backlog: int = 0  # items read from the kernel but not handled yet

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sensor(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> SensorStatus: ...


class Counters:
    """Thread-safe event/drop counters with a rate over the last status interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events = 0
        self.drops = 0
        self._mark_time = time.monotonic()
        self._mark_events = 0
        self._rate = 0.0

    def add(self, events: int = 1) -> None:
        with self._lock:
            self.events += events

    def drop(self, count: int = 1) -> None:
        with self._lock:
            self.drops += count

    def rate(self) -> float:
        """Events per second since the previous call (at least one second apart to be meaningful)."""
        with self._lock:
            now = time.monotonic()
            elapsed = now - self._mark_time
            if elapsed >= 1.0:
                self._rate = (self.events - self._mark_events) / elapsed
                self._mark_time, self._mark_events = now, self.events
            return round(self._rate, 2)


def privilege() -> str:
    return "root" if os.geteuid() == 0 else "user"


class Waker:
    """A self-pipe: sensor threads sleep in poll/select for seconds and still stop at once."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.closed = False

    def fileno(self) -> int:
        return self._read

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write, b"x")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._read, 4096)

    def close(self) -> None:
        self.closed = True
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
