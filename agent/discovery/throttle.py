"""Discovery's rate limit: files per second and bytes per second, each a token bucket of one second.

`take` returns how long to wait before the work it was told about stays within both rates; the caller
waits on its stop event, so a stop is never delayed by a limit. Bytes are debited after a file was read
(a model is hashed whole), so the byte rate holds on average, not within one large file.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimit:
    def __init__(self, files_per_second: float, bytes_per_second: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.files_per_second = files_per_second
        self.bytes_per_second = bytes_per_second
        self._clock = clock
        # When each bucket's debt is paid (a virtual time); a second in the past = a full bucket to start.
        self._files_at = self._bytes_at = clock() - 1.0

    def take(self, files: int = 0, nbytes: int = 0) -> float:
        """Debit the work done; seconds to wait before the next piece of work."""
        now = self._clock()
        if self.files_per_second > 0 and files:
            # A one-second burst is allowed: the debt may run up to a second ahead of now before waiting.
            self._files_at = max(self._files_at, now - 1.0) + files / self.files_per_second
        if self.bytes_per_second > 0 and nbytes:
            self._bytes_at = max(self._bytes_at, now - 1.0) + nbytes / self.bytes_per_second
        return max(0.0, self._files_at - now, self._bytes_at - now)
