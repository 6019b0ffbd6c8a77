"""The in-memory inventory: every known model file, indexed by path and by fingerprint.

It holds public weights too (ModelFile.protected False, agent/models/protection.py), so their copies are
recognised as public; who asks for sources of a copy keeps only the protected ones.

Detection asks it "is this new file a copy of something we protect?"; the agent keeps it in step with
the store. Access is guarded by one lock because the file pipeline runs on several threads.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable

from weightwarden.agent.events import ModelFile, TensorPrint
from weightwarden.agent.similarity.matcher import SimilarityIndex, TensorMatch

# ModelFile.details key of a file recognised as a changed copy of a protected model: it is guarded like its
# source but not a source of similarity itself (its source is).
DERIVED_FROM = "derived_from"


class Inventory:
    def __init__(self, files: Iterable[ModelFile] = ()) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, ModelFile] = {}
        self._by_quick: defaultdict[str, set[str]] = defaultdict(set)
        self._by_sha: defaultdict[str, set[str]] = defaultdict(set)
        # The tensors of protected and public files, for derived copies (agent/similarity).
        self._similar = SimilarityIndex()
        self._by_model: defaultdict[str, set[str]] = defaultdict(set)
        self._by_inode: dict[tuple[int, int], str] = {}  # (device, inode) -> path: what a file is now called
        # Set whenever a guarded file comes, goes or changes: the access marks follow at once, so a model
        # is never left unmarked for a polling interval after it was found.
        self.protected_changed = threading.Event()
        for file in files:
            self.add(file)

    def add(self, file: ModelFile) -> ModelFile | None:
        """Add or replace the entry at file.path; returns the entry it replaced, if any."""
        with self._lock:
            previous = self._remove_locked(file.path)
            self._by_path[file.path] = file
            if file.protected or (previous is not None and previous.protected):
                self.protected_changed.set()
            if file.quick_fingerprint:
                self._by_quick[file.quick_fingerprint].add(file.path)
            if file.sha256:
                self._by_sha[file.sha256].add(file.path)
            if file.tensors and (file.public or (file.protected and DERIVED_FROM not in file.details)):
                self._similar.add(file.path, file.model, file.tensors, public=not file.protected)
            self._by_model[file.model].add(file.path)
            if file.inode is not None and file.device is not None:
                self._by_inode[(file.device, file.inode)] = file.path
            return previous

    def remove(self, path: str) -> ModelFile | None:
        with self._lock:
            return self._remove_locked(path)

    def get(self, path: str) -> ModelFile | None:
        return self._by_path.get(path)

    def at_inode(self, device: int, inode: int) -> ModelFile | None:
        """The inventoried file with this identity, under whatever name it has now (a sensor may still know
        it by the name it had when it was marked)."""
        path = self._by_inode.get((device, inode))
        return self._by_path.get(path) if path is not None else None

    def under(self, directory: str) -> list[ModelFile]:
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            return [f for p, f in self._by_path.items() if p.startswith(prefix)]

    def holds_under(self, directory: str) -> bool:
        """Whether any known file lies below `directory` (stops at the first)."""
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            return any(p.startswith(prefix) for p in self._by_path)

    def protected_paths(self) -> frozenset[str]:
        """The files the agent guards (access marks, status): public weights are known but not guarded."""
        with self._lock:
            return frozenset(p for p, f in self._by_path.items() if f.protected)

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

    def with_sha256(self, sha256: str) -> list[ModelFile]:
        """The known files whose content has this SHA-256 (a sealed file's header names its plaintext's)."""
        with self._lock:
            return [self._by_path[p] for p in sorted(self._by_sha.get(sha256, ()))]

    def tensor_matches(self, file: ModelFile) -> list[TensorMatch]:
        """Protected models some of whose private tensors `file` holds, after any rename, re-shard,
        conversion, cast, quantisation, pruning, fine-tune or export; most similar first. Files at the same
        path or inode as `file` are not sources."""
        if not file.tensors:
            return []
        with self._lock:
            def itself(path: str) -> bool:
                known = self._by_path.get(path)
                return path == file.path or (known is not None and _same_inode(known, file))

            return self._similar.match(file.tensors, itself)

    def add_public_prints(self, source: str, model: str, tensors: tuple[TensorPrint, ...]) -> None:
        """Index imported public prints (`weightwarden prints import`) under the pseudo-path `source`."""
        with self._lock:
            self._similar.add(source, model, tensors, public=True)

    def remove_public_prints(self, source: str) -> None:
        with self._lock:
            self._similar.remove(source)

    def __len__(self) -> int:
        return len(self._by_path)

    def _remove_locked(self, path: str) -> ModelFile | None:
        previous = self._by_path.pop(path, None)
        if previous is not None:
            if previous.protected:
                self.protected_changed.set()
            if previous.quick_fingerprint:
                self._by_quick[previous.quick_fingerprint].discard(path)
            if previous.sha256:
                self._by_sha[previous.sha256].discard(path)
            self._similar.remove(path)
            self._by_model[previous.model].discard(path)
            if previous.device is not None and previous.inode is not None:
                key = (previous.device, previous.inode)
                if self._by_inode.get(key) == path:
                    del self._by_inode[key]
        return previous


def _same_inode(a: ModelFile, b: ModelFile) -> bool:
    return a.inode is not None and (a.device, a.inode) == (b.device, b.inode)
