"""fanotify(7) through ctypes: the few calls and structures the access sensor needs (Linux only).

No compiled extension: libc already exports fanotify_init and fanotify_mark, and the event records are
fixed-layout structs (`struct fanotify_event_metadata`, 24 bytes; `struct fanotify_response`, 8 bytes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

# fanotify_init flags
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_CLASS_CONTENT = 0x4
# fanotify_mark flags
FAN_MARK_ADD = 0x1
FAN_MARK_REMOVE = 0x2
FAN_MARK_DONT_FOLLOW = 0x4
FAN_MARK_FLUSH = 0x80
# event masks
FAN_ACCESS = 0x1
FAN_MODIFY = 0x2
FAN_CLOSE_WRITE = 0x8
FAN_CLOSE_NOWRITE = 0x10
FAN_OPEN = 0x20
FAN_Q_OVERFLOW = 0x4000
FAN_OPEN_PERM = 0x10000
FAN_ALLOW = 0x1
FAN_NOFD = -1
AT_FDCWD = -100

METADATA = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
RESPONSE = struct.Struct("=iI")


@dataclass(frozen=True, slots=True)
class FanotifyEvent:
    mask: int
    fd: int
    pid: int


class FanotifyError(OSError):
    pass


def _libc() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    lib.fanotify_init.restype = ctypes.c_int
    lib.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
    lib.fanotify_mark.restype = ctypes.c_int
    return lib


_LIB: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        _LIB = _libc()
    return _LIB


def init(flags: int) -> int:
    fd = libc().fanotify_init(flags, os.O_RDONLY | os.O_LARGEFILE | os.O_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise FanotifyError(err, f"fanotify_init: {os.strerror(err)}")
    return int(fd)


def mark(fan_fd: int, flags: int, mask: int, path: str | bytes) -> None:
    if libc().fanotify_mark(fan_fd, flags, mask, AT_FDCWD, os.fsencode(path)) < 0:
        err = ctypes.get_errno()
        raise FanotifyError(err, f"fanotify_mark {os.fsdecode(path)!r}: {os.strerror(err)}")


def parse(buffer: bytes) -> Iterator[FanotifyEvent]:
    offset = 0
    while offset + METADATA.size <= len(buffer):
        event_len, _vers, _res, _meta_len, mask, fd, pid = METADATA.unpack_from(buffer, offset)
        if event_len < METADATA.size:
            return
        yield FanotifyEvent(mask, fd, pid)
        offset += event_len


def allow(fan_fd: int, event_fd: int) -> None:
    os.write(fan_fd, RESPONSE.pack(event_fd, FAN_ALLOW))


def unavailable() -> str | None:
    """Why fanotify cannot be used here, or None when it can (probes with a throwaway group)."""
    if not sys.platform.startswith("linux"):
        return "fanotify is Linux only"
    if os.geteuid() != 0:
        return "fanotify needs root (CAP_SYS_ADMIN)"
    try:
        os.close(init(FAN_CLOEXEC | FAN_NONBLOCK | FAN_CLASS_NOTIF))
    except OSError as error:
        return f"fanotify_init failed: {error.strerror or error}"
    return None
