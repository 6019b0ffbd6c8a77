"""Read the bounded window of a file that identification looks at: never the whole file.

A full-file YARA scan of a 2 GiB checkpoint costs seconds and maps gigabytes; the formats we identify are
decided by their first bytes, plus the end of zip files, where the central directory lists the members.
"""

from __future__ import annotations

from dataclasses import dataclass

from weightwarden.agent.safe_open import read_at

DEFAULT_WINDOW_BYTES = 1 << 20
DEFAULT_TAIL_BYTES = 64 << 10
# Zip local file header, and end-of-central-directory (an archive with no members starts with it).
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class Window:
    """`head` = the first bytes of the file; `tail` = its last bytes (zip files only, else empty).

    Both may be shorter than asked if the file shrank while we read it; checks treat that as truncation.
    """

    head: bytes
    tail: bytes

    @property
    def scan_bytes(self) -> bytes:
        """What the YARA rules see. Rules anchor at offset 0, which stays the head's first byte."""
        return self.head + self.tail if self.tail else self.head


def needs_tail(head: bytes) -> bool:
    return head[:4] in _ZIP_SIGNATURES


def read_window(fd: int, size: int, window_bytes: int = DEFAULT_WINDOW_BYTES,
                tail_bytes: int = DEFAULT_TAIL_BYTES) -> Window:
    """Read at most `window_bytes` from the start of `fd`, plus the last `tail_bytes` of zip files.

    `size` is the file size from fstat; nothing is read past it. Where head and tail overlap (small files)
    the overlap is taken from the head instead of being read twice.
    """
    head = read_at(fd, 0, min(window_bytes, size))
    if not needs_tail(head) or tail_bytes <= 0:
        return Window(head, b"")
    tail_start = max(0, size - tail_bytes)
    if tail_start >= len(head):
        tail = read_at(fd, tail_start, size - tail_start)
    else:
        tail = head[tail_start:] + read_at(fd, len(head), size - len(head))
    return Window(head, tail)
