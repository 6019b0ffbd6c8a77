"""Test doubles that ship with the pipeline (STYLE.md, habit 7), so tests drive the real agent without threads."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")


class SynchronousExecutor(Executor):
    """Runs each submitted call at once, on the caller's thread: an examination or a scan is over when
    `submit` returns, and what it found waits on the ordered queue for the next `Dispatcher.drain()`."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future
