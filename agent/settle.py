"""Wait for a file to settle before examining it.

`cp` of a 5 GB checkpoint produces thousands of "modified" events; examining after each would read the
head of a file still being written. A path becomes due when it has been quiet for `settle_seconds`, or
at once when the writer closed it (inotify IN_CLOSE_WRITE, on platforms that report it).
"""

from __future__ import annotations

import threading


class Settler:
    """`wake` is set whenever the earliest due time may have moved earlier, so the agent's loop can sleep
    until then instead of polling."""

    def __init__(self, settle_seconds: float, wake: threading.Event | None = None) -> None:
        self.settle_seconds = settle_seconds
        self.wake = wake if wake is not None else threading.Event()
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self, path: str, now: float) -> None:
        with self._lock:
            was_idle = not self._last
            self._last[path] = now
        if was_idle or now == float("-inf"):
            self.wake.set()  # a storm of writes to busy files wakes nobody; a first or immediate one does

    def closed(self, path: str) -> None:
        with self._lock:
            self._last[path] = float("-inf")  # due at the next check
        self.wake.set()

    def seconds_to_next(self, now: float) -> float | None:
        """How long until the earliest path is due (0 when one is), or None when nothing waits."""
        with self._lock:
            if not self._last:
                return None
            earliest = min(self._last.values())
        return max(0.0, earliest + self.settle_seconds - now)

    def holds(self, path: str) -> bool:
        with self._lock:
            return path in self._last

    def forget(self, path: str) -> None:
        with self._lock:
            self._last.pop(path, None)

    def due(self, now: float) -> list[str]:
        with self._lock:
            ready = [p for p, last in self._last.items() if now - last >= self.settle_seconds]
            for path in ready:
                del self._last[path]
        return ready

    def __len__(self) -> int:
        return len(self._last)
