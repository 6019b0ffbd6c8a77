"""The one ordered queue: every source hands its typed observations over here; one consumer takes them in
the order they happened.

A source (a sensor, the examination pool, the evidence thread...) gets an `emitter`: a callable that stamps
each observation with the time it was handed over and the source's own sequence number. Stamping and
queueing happen under one lock shared by every source, so the queue holds observations in stamp order: a
source's own order exactly, and sources merged by the time they reported, with nothing to wait for. Order
comes from the monotonic clock (a wall-clock step back must not reorder or hold anything); each observation
also keeps the wall-clock time it was handed over, which becomes its record's time.

Replays hand over observations with times of their own (`emit(observation, at=...)`), from many threads at
once: for them the queue sorts by (time, source, sequence) and releases an observation only once the
queue's clock has passed it by `window` seconds, so the same stamped observations always come out in the
same order, however the threads interleaved.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Stamped:
    """An observation as queued: when (the queue's clock), from where, the source's sequence number, what,
    and the wall-clock time (Unix seconds) it was handed over."""

    time: float
    source: str
    sequence: int
    observation: object = field(compare=False)
    wall: float = field(compare=False, default=0.0)


class _Source:
    __slots__ = ("last", "sequence")

    def __init__(self) -> None:
        self.last = 0.0
        self.sequence = 0


class ObservationQueue:
    def __init__(self, *, window: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.window = window
        self._clock = clock
        self._wall = wall
        self._inbox: queue.SimpleQueue[Stamped] = queue.SimpleQueue()
        self._waiting: list[Stamped] = []  # a heap, ordered by (time, source, sequence)
        self._sources: dict[str, _Source] = {}
        self._lock = threading.Lock()  # stamping and queueing, for every source: the inbox is in stamp order

    def emitter(self, source: str) -> Callable[..., None]:
        """The callable that `source` hands its observations to: `emit(observation)`, or, for replays,
        `emit(observation, at=unix_seconds)`: then `at` is both its place in the order and its record time
        (a queue that replays is made with a clock counting Unix seconds)."""
        with self._lock:
            state = self._sources.setdefault(source, _Source())

        def emit(observation: object, at: float | None = None) -> None:
            with self._lock:
                moment = self._clock() if at is None else at
                state.last = max(state.last, moment)  # a source's own order is never changed
                state.sequence += 1
                self._inbox.put(Stamped(state.last, source, state.sequence, observation,
                                        self._wall() if at is None else at))
        return emit

    def take(self, timeout: float) -> list[Stamped]:
        """The observations now due, in order; waits up to `timeout` seconds for one to become due."""
        deadline = time.monotonic() + timeout
        while True:
            self._collect()
            due = self._release(self._clock() - self.window)
            remaining = deadline - time.monotonic()
            if due or remaining <= 0:
                return due
            wait = remaining
            if self._waiting:  # the head becomes due after the window, whether or not anything else arrives
                wait = min(wait, max(0.001, self._waiting[0].time + self.window - self._clock()))
            with contextlib.suppress(queue.Empty):
                heapq.heappush(self._waiting, self._inbox.get(timeout=wait))

    def drain(self) -> list[Stamped]:
        """Everything queued so far, in order, without waiting for the window (shutdown, tests)."""
        self._collect()
        return self._release(float("inf"))

    def __len__(self) -> int:
        return len(self._waiting) + self._inbox.qsize()

    def _collect(self) -> None:
        while True:
            try:
                heapq.heappush(self._waiting, self._inbox.get_nowait())
            except queue.Empty:
                return

    def _release(self, until: float) -> list[Stamped]:
        due = []
        while self._waiting and self._waiting[0].time <= until:
            due.append(heapq.heappop(self._waiting))
        return due
