"""The in-memory inventory: every known model file, indexed by path and by fingerprint.

Detection asks it "is this new file a copy of something we protect?"; the agent keeps it in step with
the store. Access is guarded by one lock because the file pipeline runs on several threads.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable

from weightwarden.agent.events import ModelFile


class Inventory:
    def __init__(self, files: Iterable[ModelFile] = ()) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, ModelFile] = {}
        self._by_quick: defaultdict[str, set[str]] = defaultdict(set)
        self._by_sha: defaultdict[str, set[str]] = defaultdict(set)
        for file in files:
            self.add(file)

    def add(self, file: ModelFile) -> ModelFile | None:
        """Add or replace the entry at file.path; returns the entry it replaced, if any."""
        with self._lock:
            previous = self._remove_locked(file.path)
            self._by_path[file.path] = file
            if file.quick_fingerprint:
                self._by_quick[file.quick_fingerprint].add(file.path)
            if file.sha256:
                self._by_sha[file.sha256].add(file.path)
            return previous

    def remove(self, path: str) -> ModelFile | None:
        with self._lock:
            return self._remove_locked(path)

    def get(self, path: str) -> ModelFile | None:
        return self._by_path.get(path)

    def under(self, directory: str) -> list[ModelFile]:
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            return [f for p, f in self._by_path.items() if p.startswith(prefix)]

    def matches(self, file: ModelFile) -> list[ModelFile]:
        """Known files with the same content as `file` (by SHA-256, else by quick fingerprint), other than
        `file` itself or another name for the same inode (a rename or hard link is not a copy)."""
        with self._lock:
            paths = set()
            if file.sha256:
                paths |= self._by_sha.get(file.sha256, set())
            if file.quick_fingerprint:
                paths |= self._by_quick.get(file.quick_fingerprint, set())
            found = [self._by_path[p] for p in sorted(paths)]
        return [f for f in found if f.path != file.path and not _same_inode(f, file)]

    def __len__(self) -> int:
        return len(self._by_path)

    def _remove_locked(self, path: str) -> ModelFile | None:
        previous = self._by_path.pop(path, None)
        if previous is not None:
            if previous.quick_fingerprint:
                self._by_quick[previous.quick_fingerprint].discard(path)
            if previous.sha256:
                self._by_sha[previous.sha256].discard(path)
        return previous


def _same_inode(a: ModelFile, b: ModelFile) -> bool:
    return a.inode is not None and (a.device, a.inode) == (b.device, b.inode)
