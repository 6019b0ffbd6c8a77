"""inotify(7) through ctypes: the few calls and the event record the file sensor needs (Linux only).

No compiled extension and no third-party reader: libc exports inotify_init1, inotify_add_watch and
inotify_rm_watch, and an event record is a fixed 16-byte header (`struct inotify_event`: wd, mask,
cookie, len) followed by `len` bytes of NUL-padded name.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import struct
import sys
import termios
from collections.abc import Iterator
from typing import NamedTuple

from weightwarden.agent.sensors import fanotify

# events (inotify.h)
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_CLOSE_NOWRITE = 0x10
IN_OPEN = 0x20
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
# sent by the kernel whatever the mask
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
# flags of inotify_add_watch
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
# set in an event's mask
IN_ISDIR = 0x40000000

HEADER = struct.Struct("=iIII")  # wd, mask, cookie, len


class RawEvent(NamedTuple):
    wd: int  # -1 for IN_Q_OVERFLOW
    mask: int
    cookie: int  # pairs an IN_MOVED_FROM with its IN_MOVED_TO
    name: bytes  # entry name inside the watched directory; b"" for events on the directory itself


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library with the inotify calls declared (loaded once, errno kept)."""
    lib = fanotify.libc()  # the C library, loaded once with errno kept
    lib.inotify_init1.argtypes = [ctypes.c_int]
    lib.inotify_init1.restype = ctypes.c_int
    lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    lib.inotify_add_watch.restype = ctypes.c_int
    lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.inotify_rm_watch.restype = ctypes.c_int
    return lib


def init() -> int:
    """A non-blocking, close-on-exec inotify instance. EMFILE: the per-user instance limit is reached."""
    fd = libc().inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, limit_reached(err) or f"inotify_init1: {os.strerror(err)}")
    return int(fd)


def add_watch(fd: int, path: str, mask: int) -> int:
    """The watch descriptor (the same one again for an inode already watched). ENOSPC: watch limit."""
    wd = libc().inotify_add_watch(fd, os.fsencode(path), mask)
    if wd < 0:
        err = ctypes.get_errno()
        raise OSError(err, limit_reached(err) or os.strerror(err), path)
    return int(wd)


def rm_watch(fd: int, wd: int) -> None:
    """Remove a watch; one the kernel already dropped (EINVAL) is no error."""
    if libc().inotify_rm_watch(fd, wd) < 0 and ctypes.get_errno() != errno.EINVAL:
        err = ctypes.get_errno()
        raise OSError(err, f"inotify_rm_watch: {os.strerror(err)}")


def parse(buffer: bytes) -> Iterator[RawEvent]:
    offset, end = 0, len(buffer)
    unpack = HEADER.unpack_from
    while offset + HEADER.size <= end:
        wd, mask, cookie, length = unpack(buffer, offset)
        start = offset + HEADER.size
        name = buffer[start:start + length].rstrip(b"\0") if length else b""
        yield RawEvent(wd, mask, cookie, name)
        offset = start + length


def queued_bytes(fd: int) -> int:
    """Bytes of events waiting in the instance's kernel queue (FIONREAD)."""
    size = bytearray(4)
    try:
        fcntl.ioctl(fd, termios.FIONREAD, size)
    except OSError:
        return 0
    return int.from_bytes(size, sys.byteorder)


def limit_reached(err: int) -> str | None:
    """What an inotify errno means when it is a per-user limit, naming the sysctl; else None."""
    if err == errno.ENOSPC:
        return f"inotify watch limit reached ({_limit('max_user_watches')})"
    if err == errno.EMFILE:
        return f"inotify instance limit reached ({_limit('max_user_instances')})"
    return None


def _limit(name: str) -> str:
    try:
        with open(f"/proc/sys/fs/inotify/{name}") as value:
            return f"fs.inotify.{name} = {value.read().strip()}"
    except OSError:
        return f"fs.inotify.{name}"
