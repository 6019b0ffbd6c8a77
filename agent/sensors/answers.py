"""Permission answers with a deadline: no open waits on the agent longer than `deadline` seconds.

The access sensor answers each held open (FAN_OPEN_PERM) itself, after a decision that normally takes tens
of microseconds. Should a decision hang, or the sensor's thread be stuck anywhere in its batch while opens
queue behind it (a slow disk under an executable being hashed, a bug, a storm of
opens the thread cannot keep up with), the watchdog answers "allow" for it, and for whatever else waits in
the kernel's queue while the sensor is stuck, and says so (`on_fail_open`): a security product must never
hang the machine it protects. The sensor thread alone closes event descriptors; an answer given twice is
harmless (the kernel has forgotten the event and refuses the second), but the registry makes sure the
watchdog never answers a descriptor number the sensor has closed and the kernel has reused. What the
watchdog read from the queue it hands to the sensor (`take_handed`): answered, but still news to record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from weightwarden.agent.sensors import fanotify as fan

log = logging.getLogger(__name__)

DEADLINE_SECONDS = 2.0  # a loaded 2-CPU machine can hold the agent's thread off a CPU for hundreds of ms
PERMISSION_MASK = fan.FAN_OPEN_PERM


class PermissionAnswers:
    def __init__(self, fan_fd: int, on_fail_open: Callable[[int, str], None], *,
                 deadline: float = DEADLINE_SECONDS) -> None:
        self._fd = fan_fd
        self._on_fail_open = on_fail_open
        self.deadline = deadline
        self._lock = threading.Lock()
        self._waiting: dict[int, float] = {}  # event fd -> when its answer is due
        self._busy_since: float | None = None  # when the sensor thread took its current batch (None: polling)
        # Events the watchdog read and answered while the sensor was stuck, kept (descriptors open) for the
        # sensor to handle as news when it is back: an open let through is still an open seen.
        self._handed: deque[fan.FanotifyEvent] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ww-fanotify-deadline", daemon=True)
        self.failed_open = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        while self._handed:
            with contextlib.suppress(OSError):
                os.close(self._handed.popleft().fd)

    def take_handed(self) -> list[fan.FanotifyEvent]:
        """The events the watchdog answered for (allow) since the last call: the sensor handles them as news."""
        taken = []
        while self._handed:
            taken.append(self._handed.popleft())
        return taken

    def hold(self, event_fd: int, since: float) -> None:
        """An open is waiting on us since `since` (monotonic; when its batch was read)."""
        with self._lock:
            self._waiting[event_fd] = since + self.deadline

    def busy(self, since: float) -> None:
        """The sensor thread is handling a batch (and reads no new events until idle())."""
        self._busy_since = since

    def idle(self) -> None:
        self._busy_since = None

    def overdue(self, event_fd: int, now: float) -> bool:
        with self._lock:
            due = self._waiting.get(event_fd)
        return due is not None and now >= due

    def answer(self, event_fd: int, allow: bool) -> bool:
        """Give the answer; False when the watchdog had answered already (the open went ahead)."""
        with self._lock:
            if self._waiting.pop(event_fd, None) is None:
                return False
            (fan.allow if allow else fan.deny)(self._fd, event_fd)
        return True

    def forget(self, event_fd: int) -> bool:
        """The sensor is about to close `event_fd`: True when it was still unanswered."""
        with self._lock:
            return self._waiting.pop(event_fd, None) is not None

    def _watch(self) -> None:
        tick = min(0.05, self.deadline / 4)
        while not self._stop.wait(tick):
            now = time.monotonic()
            with self._lock:
                late = [fd for fd, due in self._waiting.items() if now >= due]
                for fd in late:
                    del self._waiting[fd]
                    with contextlib.suppress(OSError):
                        fan.allow(self._fd, fd)
            busy = self._busy_since
            stuck = busy is not None and now - busy >= self.deadline
            if late or stuck:
                # The sensor is stuck (a decision, or anything else of its batch: a read of /proc that waits
                # on a FUSE server which itself waits on our answer): what queued behind waits too.
                drained = self._drain()
                if late or drained:
                    self.failed_open += len(late) + drained
                    self._on_fail_open(len(late) + drained,
                                       f"no decision within {self.deadline * 1000:.0f} ms")

    def _drain(self) -> int:
        """Allow every open queued in the kernel while the sensor thread is stuck, and hand the events over
        (take_handed) so the opens are still seen and recorded once it is back."""
        allowed = 0
        for _ in range(64):  # bounded: a stuck sensor is answered for in 64 reads per tick at most
            try:
                data = os.read(self._fd, 64 * 1024)
            except (BlockingIOError, OSError):
                return allowed
            if not data:
                return allowed
            for event in fan.parse(data):
                if event.fd < 0:
                    continue
                if event.mask & PERMISSION_MASK:
                    with contextlib.suppress(OSError):
                        fan.allow(self._fd, event.fd)
                    allowed += 1
                self._handed.append(event)
        return allowed
