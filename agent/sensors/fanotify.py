"""fanotify(7) through ctypes: the few calls and structures the access and fs-writes sensors need (Linux only).

No compiled extension: libc already exports fanotify_init, fanotify_mark, name_to_handle_at and
open_by_handle_at, and the event records are fixed-layout structs (`struct fanotify_event_metadata`, 24
bytes; `struct fanotify_response`, 8 bytes). A group made with file-id reporting (FAN_REPORT_DFID_NAME)
gets no descriptor with an event: information records follow the metadata instead (`FidRecord`: the
filesystem id, the directory's file handle and the entry's name as raw bytes), read by `parse_fid`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

# fanotify_init flags
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_UNLIMITED_QUEUE = 0x10
FAN_CLASS_CONTENT = 0x4
FAN_REPORT_TID = 0x100  # events carry the thread id, not the process id (Linux 4.20)
# fanotify_mark flags
FAN_MARK_ADD = 0x1
FAN_MARK_REMOVE = 0x2
FAN_MARK_DONT_FOLLOW = 0x4
FAN_MARK_FLUSH = 0x80
FAN_MARK_FILESYSTEM = 0x100
# fanotify_init flags: file-id reporting (no descriptor per event; an information record instead)
FAN_REPORT_FID = 0x200
FAN_REPORT_DIR_FID = 0x400
FAN_REPORT_NAME = 0x800
FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME
# event masks
FAN_ACCESS = 0x1
FAN_MODIFY = 0x2
FAN_CLOSE_WRITE = 0x8
FAN_CLOSE_NOWRITE = 0x10
FAN_OPEN = 0x20
FAN_MOVED_FROM = 0x40
FAN_MOVED_TO = 0x80
FAN_CREATE = 0x100
FAN_DELETE = 0x200
FAN_Q_OVERFLOW = 0x4000
FAN_OPEN_PERM = 0x10000
FAN_RENAME = 0x10000000  # Linux 5.17: one event with both the old and the new directory + name
FAN_ONDIR = 0x40000000
# information record types (struct fanotify_event_info_header.info_type)
FAN_EVENT_INFO_TYPE_FID = 1
FAN_EVENT_INFO_TYPE_DFID_NAME = 2
FAN_EVENT_INFO_TYPE_DFID = 3
FAN_EVENT_INFO_TYPE_OLD_DFID_NAME = 10
FAN_EVENT_INFO_TYPE_NEW_DFID_NAME = 12
FAN_ALLOW = 0x1
FAN_DENY = 0x2  # the open fails with EPERM
FAN_NOFD = -1
AT_FDCWD = -100

METADATA = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
RESPONSE = struct.Struct("=iI")
INFO_HEADER = struct.Struct("=BBH")  # info_type, pad, len (of the whole record)
FSID = struct.Struct("=II")  # __kernel_fsid_t val[2], taken unsigned
HANDLE_HEADER = struct.Struct("=Ii")  # struct file_handle: handle_bytes, handle_type (then f_handle)
FID_HEADER = struct.Struct("=BBHIIIi")  # INFO_HEADER, FSID and HANDLE_HEADER of a file-id record, at once
FID_TYPES = frozenset({FAN_EVENT_INFO_TYPE_FID, FAN_EVENT_INFO_TYPE_DFID_NAME, FAN_EVENT_INFO_TYPE_DFID,
                       FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, FAN_EVENT_INFO_TYPE_NEW_DFID_NAME})
MAX_HANDLE_SZ = 128


@dataclass(frozen=True, slots=True)
class FanotifyEvent:
    mask: int
    fd: int
    pid: int  # the process; in a FAN_REPORT_TID group's raw events, the thread (see `tid`)
    tid: int = 0  # the thread, when the group reports thread ids and the sensor resolved `pid` from it


class FidRecord(NamedTuple):
    """One information record of a file-id event: which filesystem, which directory, which entry.
    (Named tuples: a busy filesystem reports hundreds of thousands a second, and they are made fastest.)"""

    info_type: int  # FAN_EVENT_INFO_TYPE_*
    fsid: int  # as os.statvfs().f_fsid gives it: val[0] | val[1] << 32
    handle: bytes  # struct file_handle as open_by_handle_at takes it (header + f_handle)
    name: bytes  # the entry in that directory; b"" for records without a name


class FidEvent(NamedTuple):
    mask: int
    pid: int
    records: tuple[FidRecord, ...]


class FanotifyError(OSError):
    pass


def _libc() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    lib.fanotify_init.restype = ctypes.c_int
    lib.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
    lib.fanotify_mark.restype = ctypes.c_int
    lib.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.name_to_handle_at.restype = ctypes.c_int
    lib.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.open_by_handle_at.restype = ctypes.c_int
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


def parse_fid(buffer: bytes) -> Iterator[FidEvent]:
    """Events of a file-id group: metadata, then its information records (a name keeps its raw bytes)."""
    offset, size = 0, len(buffer)
    meta_unpack, header_unpack, info_unpack = METADATA.unpack_from, FID_HEADER.unpack_from, INFO_HEADER.unpack_from
    meta_size, header_size, info_size = METADATA.size, FID_HEADER.size, INFO_HEADER.size
    handle_start = INFO_HEADER.size + FSID.size
    while offset + meta_size <= size:
        event_len, _vers, _res, meta_len, mask, _fd, pid = meta_unpack(buffer, offset)
        end = offset + event_len
        if event_len < meta_size or end > size:
            return
        records = []
        at = offset + meta_len
        while at + info_size <= end:
            info_type, _pad, length = info_unpack(buffer, at)
            if length < info_size or at + length > end:
                break
            if info_type in FID_TYPES and length >= header_size:
                _, _, _, low, high, handle_bytes, _kind = header_unpack(buffer, at)
                name_at = at + header_size + handle_bytes
                name = buffer[name_at:at + length]
                nul = name.find(b"\0")
                records.append(FidRecord(info_type, low | high << 32, buffer[at + handle_start:name_at],
                                         name if nul < 0 else name[:nul]))
            at += length
        yield FidEvent(mask, pid, tuple(records))
        offset = end


def name_to_handle(path: str | bytes) -> bytes:
    """The file handle of `path` (a directory or file; the last component not followed when a link)."""
    buffer = ctypes.create_string_buffer(HANDLE_HEADER.size + MAX_HANDLE_SZ)
    HANDLE_HEADER.pack_into(buffer, 0, MAX_HANDLE_SZ, 0)
    mount_id = ctypes.c_int()
    if libc().name_to_handle_at(AT_FDCWD, os.fsencode(path), buffer, ctypes.byref(mount_id), 0) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"name_to_handle_at {os.fsdecode(path)!r}: {os.strerror(err)}")
    size = HANDLE_HEADER.unpack_from(buffer, 0)[0]
    return bytes(buffer.raw[:HANDLE_HEADER.size + size])


def open_by_handle(mount_fd: int, handle: bytes, flags: int = os.O_PATH | os.O_CLOEXEC) -> int:
    """A descriptor for the file a handle names, through `mount_fd`'s mount (needs CAP_DAC_READ_SEARCH)."""
    fd = libc().open_by_handle_at(mount_fd, handle, flags)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


def allow(fan_fd: int, event_fd: int) -> None:
    os.write(fan_fd, RESPONSE.pack(event_fd, FAN_ALLOW))


def deny(fan_fd: int, event_fd: int) -> None:
    os.write(fan_fd, RESPONSE.pack(event_fd, FAN_DENY))


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
