"""Idle CPU and I/O priority for the calling thread only (Linux keeps both per thread).

CPU: nice 19 through setpriority(PRIO_PROCESS, tid). I/O: the idle class through ioprio_set(IOPRIO_WHO_PROCESS,
tid), called as a raw syscall (glibc has no wrapper): the block layer serves the thread only when no one else
asks for the disk (with the BFQ or mq-deadline schedulers; "none" ignores classes, which `status` says).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform
import threading
from dataclasses import dataclass

IDLE_NICE = 19
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_IDLE = 3
IOPRIO_CLASS_SHIFT = 13
_SYSCALLS = {  # (ioprio_set, ioprio_get)
    "x86_64": (251, 252), "amd64": (251, 252), "aarch64": (30, 31), "arm64": (30, 31),
    "i386": (289, 290), "i686": (289, 290), "armv7l": (314, 315), "riscv64": (30, 31), "ppc64le": (273, 274),
    "s390x": (282, 283),
}


@dataclass(frozen=True, slots=True)
class Priority:
    nice: int | None  # None: could not be set
    io_class: int | None  # IOPRIO_CLASS_IDLE when set
    message: str = ""

    @property
    def idle(self) -> bool:
        return self.nice == IDLE_NICE and self.io_class == IOPRIO_CLASS_IDLE


def make_current_thread_idle() -> Priority:
    """Lower this thread to nice 19 and the idle I/O class; says what could not be done, never raises."""
    tid = threading.get_native_id()
    problems = []
    nice: int | None = None
    try:
        os.setpriority(os.PRIO_PROCESS, tid, IDLE_NICE)
        nice = os.getpriority(os.PRIO_PROCESS, tid)
    except (OSError, AttributeError) as error:
        problems.append(f"nice: {error}")
    io_class: int | None = None
    try:
        ioprio_set(tid, IOPRIO_CLASS_IDLE)
        io_class = ioprio_get(tid) >> IOPRIO_CLASS_SHIFT
    except OSError as error:
        problems.append(f"io priority: {error}")
    return Priority(nice, io_class, "; ".join(problems))


def ioprio_set(tid: int, io_class: int, level: int = 0) -> None:
    number = _numbers()[0]
    if _libc().syscall(number, IOPRIO_WHO_PROCESS, tid, (io_class << IOPRIO_CLASS_SHIFT) | level) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def ioprio_get(tid: int) -> int:
    """The raw ioprio value of a thread (class << 13 | level)."""
    value = int(_libc().syscall(_numbers()[1], IOPRIO_WHO_PROCESS, tid))
    if value < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return value


def _numbers() -> tuple[int, int]:
    numbers = _SYSCALLS.get(platform.machine().lower())
    if numbers is None or not platform.system() == "Linux":
        raise OSError(0, f"ioprio syscalls unknown on {platform.system()} {platform.machine()}")
    return numbers


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
