"""Calls that may hang (a stat of a home on a dead NFS server) made on a helper thread with a deadline.

A thread stuck in the kernel cannot be cancelled, so the call is abandoned, not stopped: its thread is a
daemon, and while it is still stuck, another call with the same key is refused at once instead of piling
up a second stuck thread. The agent's own threads never wait longer than the deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_stuck: set[str] = set()  # keys whose earlier call has not returned yet


class TimedOut(Exception):
    """The call did not return within its deadline (or an earlier call with the same key is still stuck)."""


def call_bounded(key: str, work: Callable[[], T], seconds: float) -> T:
    """`work()`'s result, or TimedOut after `seconds`; exceptions raised by `work` are raised here."""
    with _lock:
        if key in _stuck:
            raise TimedOut(f"an earlier look at {key} has not returned yet")
        _stuck.add(key)
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # handed to the caller
            failure.append(error)
        finally:
            with _lock:
                _stuck.discard(key)
            done.set()

    threading.Thread(target=run, name="ww-scope-probe", daemon=True).start()
    if not done.wait(seconds):
        raise TimedOut(f"no answer within {seconds:g} s")
    if failure:
        raise failure[0]
    return outcome[0]
