"""Open files for reading without the traps a hostile tree sets.

A FIFO or device must never block the agent, a symlink must never be followed into a loop or out of a
watched root, and reading a file must not change its access time (the owner would see our hashing as
their own access). Every reader in the agent goes through `open_regular`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

_BASE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)


class NotRegularFile(OSError):
    """The path is a FIFO, socket, device, directory or symlink: we never read those."""


def open_regular(path: str | bytes, *, dir_fd: int | None = None) -> tuple[int, os.stat_result]:
    """Open `path` read-only as a regular file; returns (fd, fstat). The caller closes the fd.

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; the fstat check then
    rejects it. O_NOATIME is only allowed to the file's owner (or CAP_FOWNER), so fall back without it.
    """
    try:
        fd = os.open(path, _BASE_FLAGS | _NOATIME, dir_fd=dir_fd)
    except PermissionError:
        if not _NOATIME:
            raise
        fd = os.open(path, _BASE_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NotRegularFile(errno.ELOOP, "is a symbolic link", path) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, f"not a regular file ({_kind(info.st_mode)})", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


@contextmanager
def regular_file(path: str | bytes) -> Iterator[tuple[int, os.stat_result]]:
    fd, info = open_regular(path)
    try:
        yield fd, info
    finally:
        os.close(fd)


def read_at(fd: int, offset: int, length: int) -> bytes:
    """Read up to `length` bytes at `offset`, looping over short reads; fewer bytes only at EOF."""
    chunks: list[bytes] = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink")):
        if test(mode):
            return name
    return "special file"
