"""What we learned about a file, keyed by its identity, so an unchanged file is never read again.

The key is (device, inode, size, mtime_ns): a rewrite changes mtime or size, a replacement changes the
inode. The cache holds verdicts for non-model files too ("not a model"), which is what makes a second
scan of a large tree a matter of stat calls. Persistence belongs to the store; this is the in-memory view.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from weightwarden.agent.events import TensorPrint


class FileKey(NamedTuple):
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileKey:
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class CachedResult:
    """format None means "looked at, not a model"; sha256 None means "not hashed (yet)"."""

    format: str | None
    sha256: str | None = None
    quick_fingerprint: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    tensors: tuple[TensorPrint, ...] = ()  # tensor fingerprints, taken in the same pass as the SHA-256


class FingerprintCache:
    """Thread-safe map FileKey -> CachedResult that remembers which entries are new since the last drain."""

    def __init__(self, entries: dict[FileKey, CachedResult] | None = None) -> None:
        self._entries: dict[FileKey, CachedResult] = dict(entries or {})
        self._unsaved: dict[FileKey, CachedResult] = {}
        self._lock = threading.Lock()

    def get(self, key: FileKey) -> CachedResult | None:
        return self._entries.get(key)  # dict reads are atomic under the GIL

    def put(self, key: FileKey, result: CachedResult) -> None:
        with self._lock:
            self._entries[key] = result
            self._unsaved[key] = result

    def drain_unsaved(self) -> dict[FileKey, CachedResult]:
        """Entries added since the last call; the caller persists them."""
        with self._lock:
            unsaved, self._unsaved = self._unsaved, {}
        return unsaved

    def __len__(self) -> int:
        return len(self._entries)
