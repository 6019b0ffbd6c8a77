"""Calls that may hang (a stat of a home on a dead NFS server) made on helper threads with a deadline.

A thread stuck in the kernel cannot be cancelled, so the call is abandoned, not stopped: its thread is a
daemon, and while it is still stuck, another call with the same key is refused at once instead of piling
up a second stuck thread. Many calls can share one deadline (`start` each, then `result` each), so fifty
homes on one dead server cost the agent one deadline, not fifty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_stuck: set[str] = set()  # keys whose earlier call has not returned yet


class TimedOut(Exception):
    """The call did not return within its deadline."""


class StillStuck(TimedOut):
    """An earlier call with the same key has not returned yet: no second thread is started."""


class Pending(Generic[T]):
    """A call running on its own thread."""

    def __init__(self, key: str, work: Callable[[], T]) -> None:
        self._outcome: list[T] = []
        self._failure: list[BaseException] = []
        self._done = threading.Event()
        self._key = key
        self._work = work
        threading.Thread(target=self._run, name="ww-scope-probe", daemon=True).start()

    def _run(self) -> None:
        try:
            self._outcome.append(self._work())
        except BaseException as error:  # handed to the caller
            self._failure.append(error)
        finally:
            with _lock:
                _stuck.discard(self._key)
            self._done.set()

    def result(self, deadline: float, seconds: float) -> T:
        """The result, or TimedOut once time.monotonic() passes `deadline` (`seconds` is the deadline as the
        caller gave it, for the message); `work`'s exception is raised here."""
        if not self._done.wait(max(0.0, deadline - time.monotonic())):
            raise TimedOut(f"no answer within {seconds:g} s")
        if self._failure:
            raise self._failure[0]
        return self._outcome[0]


def start(key: str, work: Callable[[], T]) -> Pending[T]:
    """Run `work` on a helper thread; TimedOut at once when an earlier call with `key` is still stuck."""
    with _lock:
        if key in _stuck:
            raise StillStuck("an earlier look has not returned yet")
        _stuck.add(key)
    return Pending(key, work)


def all_bounded(calls: dict[str, Callable[[], T]], seconds: float) -> dict[str, T | TimedOut]:
    """Every call started at once, all sharing one deadline: key -> result, or the TimedOut it ended with."""
    started: dict[str, Pending[T] | TimedOut] = {}
    for key, work in calls.items():
        try:
            started[key] = start(key, work)
        except TimedOut as stuck:
            started[key] = stuck
    deadline = time.monotonic() + seconds
    results: dict[str, T | TimedOut] = {}
    for key, pending in started.items():
        try:
            results[key] = pending if isinstance(pending, TimedOut) else pending.result(deadline, seconds)
        except TimedOut as late:
            results[key] = late
    return results
