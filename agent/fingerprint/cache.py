"""What we learned about a file, keyed by its identity, so an unchanged file is never read again.

The key is (device, inode, size, mtime_ns): a rewrite changes mtime or size, a replacement changes the
inode. The cache holds verdicts for non-model files too ("not a model"), which is what makes a second
scan of a large tree a matter of stat calls. Persistence belongs to the store; this is the in-memory view.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import struct
import threading
from array import array
from bisect import bisect_left
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


NOT_A_MODEL = CachedResult(None)
_MERGE_AT = 1 << 16  # recent "not a model" digests kept in a set before they join the sorted array
_KEY = struct.Struct("<QQqq")  # device, inode, size, mtime_ns


class _Verdicts:
    """The keys of files known not to be models, as 8-byte keyed digests: a sorted array plus a small
    set of recent ones. About 8 bytes a file where a dict entry costs some 250, so discovery's million-file
    trees stay within tens of MiB. The digest is keyed with a random key per process (blake2b), so nobody can
    pick a model file's (device, inode, size, mtime_ns) to collide with a cached "not a model" one; a chance
    collision among a million files has odds of about 1 in 30 million and costs one model missed until the
    file changes."""

    def __init__(self) -> None:
        self._key = os.urandom(16)
        self._sorted = array("Q")
        self._recent: set[int] = set()

    def digest(self, key: tuple[int, int, int, int]) -> int:
        try:
            packed = _KEY.pack(*key)
        except struct.error:  # a value beyond 64 bits: no real file has one, but never fail on it
            packed = repr(tuple(key)).encode()
        return int.from_bytes(hashlib.blake2b(packed, digest_size=8, key=self._key).digest(), "little")

    def __contains__(self, digest: int) -> bool:
        if digest in self._recent:
            return True
        values = self._sorted
        index = bisect_left(values, digest)
        return index < len(values) and values[index] == digest

    def add(self, digest: int) -> None:
        if digest in self:
            return
        self._recent.add(digest)
        if len(self._recent) >= _MERGE_AT:
            # A streaming merge of two sorted runs: no million-int set or list on the way, only the new array.
            merged = array("Q", heapq.merge(self._sorted, sorted(self._recent)))
            self._sorted, self._recent = merged, set()  # readers see the old or the new array, both whole

    def discard(self, digest: int) -> None:
        self._recent.discard(digest)
        index = bisect_left(self._sorted, digest)
        if index < len(self._sorted) and self._sorted[index] == digest:
            values = array("Q", self._sorted)
            del values[index]
            self._sorted = values

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)


class FingerprintCache:
    """Thread-safe map FileKey -> CachedResult that remembers which entries are new since the last drain.

    Plain "not a model" verdicts (no details) are kept compactly (_Verdicts) and given back as NOT_A_MODEL;
    everything else is a dict entry. Unsaved "not a model" keys wait as a flat list of ints until drained."""

    def __init__(self, entries: dict[FileKey, CachedResult] | None = None) -> None:
        self._entries: dict[FileKey, CachedResult] = {}
        self._verdicts = _Verdicts()
        for key, result in (entries or {}).items():
            if _plain_non_model(result):
                self._verdicts.add(self._verdicts.digest(key))
            else:
                self._entries[key] = result
        self._unsaved: dict[FileKey, CachedResult] = {}
        self._unsaved_non_models = array("q")  # device, inode, size, mtime_ns, ... flat: 32 bytes a file
        self._lock = threading.Lock()

    def get(self, key: FileKey) -> CachedResult | None:
        found = self._entries.get(key)  # dict reads are atomic under the GIL
        if found is not None:
            return found
        return NOT_A_MODEL if self._verdicts.digest(key) in self._verdicts else None

    def put(self, key: FileKey, result: CachedResult) -> None:
        with self._lock:
            digest = self._verdicts.digest(key)
            if _plain_non_model(result):
                self._entries.pop(key, None)
                self._verdicts.add(digest)
                try:
                    self._unsaved_non_models.extend(array("q", key))  # all four or none
                except OverflowError:  # beyond 64 bits signed: kept as a dict entry instead
                    self._unsaved[key] = result
                return
            if digest in self._verdicts:
                self._verdicts.discard(digest)
            self._entries[key] = result
            self._unsaved[key] = result

    def drain_unsaved(self) -> dict[FileKey, CachedResult]:
        """Entries added since the last call; the caller persists them."""
        with self._lock:
            unsaved, self._unsaved = self._unsaved, {}
            flat, self._unsaved_non_models = self._unsaved_non_models, array("q")
        for index in range(0, len(flat), 4):
            unsaved[FileKey(*flat[index:index + 4])] = NOT_A_MODEL
        return unsaved

    @property
    def unsaved_count(self) -> int:
        return len(self._unsaved) + len(self._unsaved_non_models) // 4

    def __len__(self) -> int:
        return len(self._entries) + len(self._verdicts)


def _plain_non_model(result: CachedResult) -> bool:
    return result.format is None and not result.details and not result.tensors and not result.sha256
