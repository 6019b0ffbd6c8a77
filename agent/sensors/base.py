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
from collections.abc import Callable
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
    backlog: int = 0  # items waiting to be handled (in the kernel queue, or read but not handled yet)

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


class SensorThread:
    """A sensor's reading thread: started and stopped the same way by every sensor.

    `stopping` ends the loop; the `waker` makes a thread asleep in poll/select see a stop (or a pause) at
    once; pause() holds reading back so events wait in the kernel's queue (tests use it to make a real
    queue overflow, or to look only after a process is gone).
    """

    def __init__(self, name: str, run: Callable[[], None]) -> None:
        self.name = name
        self._run = run
        self.stopping = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self.waker = Waker()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.waker.closed:  # started again after a stop
            self.waker = Waker()
        self.stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self._resumed.set()
        self.waker.wake()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        self.waker.close()

    def pause(self) -> None:
        self._resumed.clear()
        self.waker.wake()

    def resume(self) -> None:
        self._resumed.set()
        self.waker.wake()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    def wait_resumed(self, timeout: float) -> bool:
        """False while paused (after `timeout` seconds), so the loop can check `stopping` again."""
        return self._resumed.wait(timeout)
