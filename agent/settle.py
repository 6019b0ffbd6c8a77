"""Wait for a file to settle before examining it.

`cp` of a 5 GB checkpoint produces thousands of "modified" events; examining after each would read the
head of a file still being written. A path becomes due when it has been quiet for `settle_seconds`, or
at once when the writer closed it (inotify IN_CLOSE_WRITE, on platforms that report it).
"""

from __future__ import annotations

import threading


class Settler:
    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self, path: str, now: float) -> None:
        with self._lock:
            self._last[path] = now

    def closed(self, path: str) -> None:
        with self._lock:
            self._last[path] = float("-inf")  # due at the next check

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
