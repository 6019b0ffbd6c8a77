"""What a waiting open asks for, read from the opening thread's system call (agent/access/open_mode.py).

Real threads blocked in real opens: a FIFO's open waits until its other end opens, long enough to look at.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.waiting import wait_for
from weightwarden.agent.access.open_mode import READ, READ_WRITE, WRITE, access_of_flags, opening_access

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/syscall"), reason="no /proc/PID/syscall here")


def test_flags_map_to_the_access_they_ask_for() -> None:
    assert access_of_flags(os.O_RDONLY | os.O_CLOEXEC) == READ
    assert access_of_flags(os.O_WRONLY | os.O_CREAT) == WRITE
    assert access_of_flags(os.O_RDWR) == READ_WRITE
    assert access_of_flags(os.O_RDONLY | os.O_TRUNC) == WRITE  # truncating destroys: it is writing


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def _blocked_open(fifo: Path, flags: int) -> Iterator[int]:
    """A thread of this process blocked in open(fifo, flags); yields its thread id, then lets it go."""
    tid: list[int] = []
    opened: list[int] = []

    def run() -> None:
        tid.append(threading.get_native_id())
        opened.append(os.open(fifo, flags))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: tid and _in_open(tid[0]), timeout=5, what="the thread blocked in open")
    yield tid[0]
    # release it: open the other end without blocking
    other = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    thread.join(timeout=5)
    for fd in (*opened, other):
        os.close(fd)


def _in_open(tid: int) -> bool:
    with open(f"/proc/self/task/{tid}/syscall") as handle:
        return handle.read().split()[0] in ("2", "257", "56", "437")


@pytest.mark.parametrize(("flags", "expected"), [(os.O_RDONLY, READ), (os.O_WRONLY, WRITE)])
def test_the_blocked_threads_own_flags_are_read(fifo: Path, flags: int, expected: str) -> None:
    for tid in _blocked_open(fifo, flags):
        assert opening_access(os.getpid(), tid) == expected
        # the main thread is not in an open: it says nothing, and never lends its state to the other thread
        assert opening_access(os.getpid(), threading.get_native_id()) is None


def test_a_thread_that_is_gone_tells_nothing() -> None:
    assert opening_access(os.getpid(), 2**22 + 7) is None
