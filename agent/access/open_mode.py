"""What a waiting open asks for: read, write or both, read from the opening thread's system call.

A fanotify permission event (FAN_OPEN_PERM) says who opens which file, never with which flags. The opening
thread is blocked inside open(2) until we answer, so /proc/PID/task/TID/syscall (root only) shows the call
and its arguments: `257 0xffffff9c 0x7ffd... 0x80001 ...` is openat(dirfd, path, O_WRONLY|O_CLOEXEC).
openat2(2) passes its flags in a struct (`struct open_how`, flags first), read from /proc/PID/mem. The access
sensor's permission group reports thread ids (FAN_REPORT_TID), so the event names the very thread that
opens, and only that thread's call is read: what another thread of the process is opening at the same
moment never colours the answer, and a process with many threads costs no more than one.

Anything else (io_uring, a call we do not know, a thread that cannot be read) is `None`: the caller then
demands the most (read-write), so an unknown way of opening is never an easier way in.
"""

from __future__ import annotations

import os
import struct
import time

RUNNING_WAIT_SECONDS = 0.02  # an opener still on its way to sleep (opening_access); preempted, it takes longer
O_ACCMODE = 0o3
READ, WRITE, READ_WRITE = "read", "write", "read-write"

# System call numbers that open a file by path, per machine: (open, creat, openat, openat2, execve, execveat)
_CALLS = {
    "x86_64": {2: "open", 85: "creat", 257: "openat", 437: "openat2", 59: "exec", 322: "exec", 134: "exec"},
    "aarch64": {56: "openat", 437: "openat2", 221: "exec", 281: "exec"},
}.get(os.uname().machine, {})
_FLAGS_ARG = {"open": 1, "openat": 2}  # which argument holds the flags
_U64 = struct.Struct("=Q")


def access_of_flags(flags: int) -> str:
    """The access an open's flags ask for; truncating is writing, whatever the access mode says."""
    mode = flags & O_ACCMODE
    if mode == os.O_RDWR:
        return READ_WRITE
    if mode == os.O_WRONLY or flags & os.O_TRUNC:
        return WRITE
    return READ


def opening_access(pid: int, tid: int) -> str | None:
    """read | write | read-write for the open thread `tid` of process `pid` is blocked in; None when that
    cannot be told (not in a known open call, unreadable, gone)."""
    deadline = time.monotonic() + RUNNING_WAIT_SECONDS
    tries = 0
    while True:
        fields = _syscall(pid, tid)
        if fields is None:
            return None
        if fields != [b"running"]:
            return _access_of_call(pid, fields)
        # The kernel queues the event a moment before the opener goes to sleep waiting on it: while it is
        # still on a CPU its syscall file says "running". Look again, briefly.
        if time.monotonic() > deadline:
            return None
        tries += 1
        if tries < 8:
            os.sched_yield()  # it is on the other CPU, about to sleep
        else:
            time.sleep(0.0001)  # preempted before it slept: let it run


def _access_of_call(pid: int, fields: list[bytes]) -> str | None:
    if len(fields) < 7:
        return None  # "-1 sp pc": not in a system call
    try:
        number = int(fields[0])
        args = [int(value, 16) for value in fields[1:7]]
    except ValueError:
        return None
    call = _CALLS.get(number)
    if call is None:
        return None
    if call == "exec":
        return READ  # an executable is read to run it (a llamafile is a model and a program)
    if call == "creat":
        return WRITE
    if call == "openat2":
        flags = _open_how_flags(pid, args[2])
        return None if flags is None else access_of_flags(flags)
    return access_of_flags(args[_FLAGS_ARG[call]])


def _syscall(pid: int, tid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall", "rb") as handle:
            return handle.read(512).split()
    except OSError:
        return None


def _open_how_flags(pid: int, address: int) -> int | None:
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
            memory.seek(address)
            data = memory.read(_U64.size)
    except (OSError, OverflowError, ValueError):
        return None
    return _U64.unpack(data)[0] if len(data) == _U64.size else None
