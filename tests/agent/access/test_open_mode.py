"""What a waiting open asks for, read from the opening thread's system call (agent/access/open_mode.py).

Real threads blocked in real opens: a FIFO's open waits until its other end opens, long enough to look at.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
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
def fifos(tmp_path: Path) -> tuple[Path, Path]:
    made = (tmp_path / "one", tmp_path / "two")
    for path in made:
        os.mkfifo(path)
    return made


@contextlib.contextmanager
def blocked_open(fifo: Path, flags: int) -> Iterator[int]:
    """A thread of this process blocked in open(fifo, flags); yields its thread id, then lets it go."""
    tid: list[int] = []
    opened: list[int] = []

    def run() -> None:
        tid.append(threading.get_native_id())
        opened.append(os.open(fifo, flags))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: tid and _in_open(tid[0]), timeout=5, what="the thread blocked in open")
    try:
        yield tid[0]
    finally:
        other = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # the other end: the blocked open returns
        thread.join(timeout=5)
        for fd in (*opened, other):
            os.close(fd)


def _in_open(tid: int) -> bool:
    with open(f"/proc/self/task/{tid}/syscall") as handle:
        return handle.read().split()[0] in ("2", "257", "56", "437")


@pytest.mark.parametrize(("flags", "expected"), [(os.O_RDONLY, READ), (os.O_WRONLY, WRITE)])
def test_the_blocked_threads_flags_are_read(fifos: tuple[Path, Path], flags: int, expected: str) -> None:
    with blocked_open(fifos[0], flags) as tid:
        assert opening_access(os.getpid(), tid) == expected


def test_only_the_opening_thread_counts(fifos: tuple[Path, Path]) -> None:
    """Each thread is judged by its own call: another thread's open, at the same moment, of something else
    neither lends nor costs it anything."""
    with blocked_open(fifos[0], os.O_RDONLY) as reader, blocked_open(fifos[1], os.O_WRONLY) as writer:
        assert opening_access(os.getpid(), reader) == READ
        assert opening_access(os.getpid(), writer) == WRITE


def test_a_thread_in_no_open_or_gone_tells_nothing() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{sleeper.pid}/exe").endswith("sleep"), timeout=5, what="sleep")
        assert opening_access(sleeper.pid, sleeper.pid) is None
    finally:
        sleeper.kill()
        sleeper.wait(timeout=5)
    assert opening_access(2**22 + 7, 2**22 + 7) is None
