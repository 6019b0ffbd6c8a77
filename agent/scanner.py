"""Examine files: identify by content, fingerprint, remember. Used by `scan` and by the agent alike.

The cache is consulted first: a file whose (device, inode, size, mtime_ns) we have seen is never opened
again, which turns a rescan of an unchanged tree into stat calls. Work that needs I/O runs on a thread
pool (YARA and hashlib release the GIL), with a bounded number of files in flight.

The one cached verdict that can go stale without its file changing is "not a model" for the files of a
pair or folder model (identify/companions.py): a companion (an OpenVINO .bin, ONNX external data, ...)
examined before the model file that names it existed, or a tensor bundle index examined before its data
shards. So whenever a file of such a model is examined afresh, its partners cached as "not a model" are
examined again (stale_partners); a rescan of unchanged files costs nothing extra.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

from weightwarden.agent.events import ModelFile, TensorPrint, display_path, raw_path_hex
from weightwarden.agent.fingerprint import (
    CachedResult,
    FileChangedError,
    FileKey,
    FingerprintCache,
    hash_with_tensors,
    is_sparse,
    quick_fingerprint,
    sample_tensors,
)
from weightwarden.agent.fingerprint.layouts import plan_tensors
from weightwarden.agent.fingerprint.sha256 import DEFAULT_BLOCK
from weightwarden.agent.fingerprint.tensors import TensorPlan
from weightwarden.agent.identify import Identifier, onnx_external
from weightwarden.agent.identify.companions import companion_paths, onnx_file_seen, primary_path
from weightwarden.agent.identify.identification import Identification
from weightwarden.agent.models.known_hashes import known_hash
from weightwarden.agent.naming import logical_model_name
from weightwarden.agent.safe_open import NotRegularFile, open_regular
from weightwarden.agent.walk import ScanIssue, WalkCounts, walk_files


@dataclass
class ScanStats:
    files: int = 0
    bytes: int = 0
    models: int = 0
    model_bytes: int = 0
    cache_hits: int = 0
    bytes_hashed: int = 0
    issues: int = 0
    walk: WalkCounts = field(default_factory=WalkCounts)


class Scanner:
    def __init__(self, identifier: Identifier, cache: FingerprintCache, *, hash_block_bytes: int = DEFAULT_BLOCK,
                 hash_sparse_files: bool = False, workers: int = 4) -> None:
        self.identifier = identifier
        self.cache = cache
        self.hash_block_bytes = hash_block_bytes
        self.hash_sparse_files = hash_sparse_files
        self.workers = workers
        self._hashed_lock = threading.Lock()
        self._bytes_hashed = 0
        # Counts stale_partners() calls that had partners to look at. A "not a model" verdict reached while
        # one ran may predate the model file that call announced and reach the cache after it looked:
        # such a file is examined again instead (see _examine_uncached).
        self._partner_lock = threading.Lock()
        self._partner_checks = 0

    # ------------------------------------------------------------------ one file

    def examine(self, path: str, info: os.stat_result | None = None, *,
                on_identified: Callable[[ModelFile], None] | None = None,
                recheck_non_model: bool = False) -> ModelFile | ScanIssue | None:
        """A ModelFile when `path` is a model artifact, None when it is not, a ScanIssue when we can't tell.

        `on_identified` sees the model (quick fingerprint known, SHA-256 not yet) before the full hash is
        computed, so a copy can be recognised while a large file is still being read. `recheck_non_model`
        ignores a cached "not a model" (a file whose pair or folder model has become whole since).
        """
        if path.endswith(".onnx"):
            onnx_file_seen(path)
        try:
            if info is None:
                info = os.stat(path, follow_symlinks=False)
            cached = self.cache.get(FileKey.of(info))
            if cached is not None and cached.format is None and recheck_non_model:
                cached = None
            if cached is not None and (cached.format is None or cached.sha256 or self._skip_hash(info)):
                return self._model_file(path, info, cached)
            return self._examine_uncached(path, on_identified)
        except NotRegularFile as error:
            return ScanIssue.of(path, f"skipped: {error.strerror}")
        except FileChangedError as error:
            return ScanIssue.of(path, f"changed while reading, not recorded: {error}", changing=True)
        except FileNotFoundError:
            return ScanIssue.of(path, "vanished before it could be read", gone=True)
        except OSError as error:
            return ScanIssue.of(path, error)

    def stale_partners(self, path: str, model: ModelFile) -> list[str]:
        """The files of the same pair or folder model as the model file at `path` (the companions it names,
        or the model file naming it) that are cached as "not a model": examined before `path` was there.
        Examine each again with recheck_non_model=True."""
        identification = Identification(model.format, True, model.details)
        primary = primary_path(path, identification)
        partners = [primary] if primary is not None else companion_paths(path, identification)
        if partners:
            with self._partner_lock:
                self._partner_checks += 1
        stale = []
        for partner in partners:
            try:
                info = os.stat(partner, follow_symlinks=False)
            except (OSError, ValueError):
                continue
            cached = self.cache.get(FileKey.of(info))
            if cached is not None and cached.format is None:
                stale.append(partner)
        return stale

    def _examine_with_partners(self, path: str, info: os.stat_result) -> list[ModelFile | ScanIssue | None]:
        """`path` examined afresh, followed by its stale partners (when it is a model file) and theirs: an
        .mlpackage's model spec makes its manifest count, and the manifest its weights."""
        outcomes = [self.examine(path, info)]
        models = [(path, outcomes[0])]
        while models:
            model_path, model = models.pop()
            if not isinstance(model, ModelFile):
                continue
            for partner in self.stale_partners(model_path, model):
                outcomes.append(self.examine(partner, recheck_non_model=True))
                models.append((partner, outcomes[-1]))  # no longer stale once a model: the walk ends
        return outcomes

    def _examine_uncached(self, path: str, on_identified: Callable[[ModelFile], None] | None, retries: int = 2
                          ) -> ModelFile | ScanIssue | None:
        partner_checks = self._partner_checks
        fd, info = open_regular(path)
        try:
            found = self.identifier.identify_fd(fd, info.st_size, path)
            if found is None:
                result = CachedResult(None)
            else:
                quick = quick_fingerprint(fd, info.st_size)
                if on_identified is not None:
                    partial = self._model_file(path, info, CachedResult(found.format, None, quick, found.details))
                    if partial is not None:
                        on_identified(partial)
                digest: str | None = None
                tensors: tuple[TensorPrint, ...] = ()
                known = known_hash(path, found.format, found.details, info.st_size)
                plan: TensorPlan | None = None
                if known.sha256 is not None:
                    # The blob's name is its SHA-256: sample the tensors without reading the whole file.
                    plan = tensor_plan_of(fd, info.st_size, found, path)
                    digest, tensors = known.sha256, sample_tensors(fd, info.st_size, found.format, plan=plan)
                elif not self._skip_hash(info):
                    # One pass: the tensor sampler rides on the SHA-256 read.
                    plan = tensor_plan_of(fd, info.st_size, found, path)
                    digest, tensors = hash_with_tensors(fd, info.st_size, found.format,
                                                        block_size=self.hash_block_bytes, plan=plan)
                    with self._hashed_lock:
                        self._bytes_hashed += info.st_size
                tensors = tensors or found.prints  # a sealed file: its plaintext's, from its header
                details = {**found.details, **known.details}
                if plan is not None and plan.skipped is not None:
                    details["over_budget"] = plan.skipped  # parsed within budget or not at all: say why
                if digest is None:
                    details["sha256_skipped"] = "sparse file: allocated blocks are far below its size"
                result = CachedResult(found.format, digest, quick, details, tensors)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if FileKey.of(after) != FileKey.of(info):
            return ScanIssue.of(path, "changed while reading, not recorded", changing=True)
        if result.format is not None and not _same_file_still_there(path, info):
            return ScanIssue.of(path, "deleted or replaced while it was being hashed; not recorded")
        if result.format is None:
            with self._partner_lock:  # the check and the put, atomic against stale_partners' count and look
                if partner_checks == self._partner_checks or not retries:
                    self.cache.put(FileKey.of(info), result)
                    return None
            return self._examine_uncached(path, on_identified, retries - 1)  # its model file may be there now
        self.cache.put(FileKey.of(info), result)
        return self._model_file(path, info, result)

    def _skip_hash(self, info: os.stat_result) -> bool:
        return not self.hash_sparse_files and is_sparse(info)

    @staticmethod
    def _model_file(path: str, info: os.stat_result, result: CachedResult) -> ModelFile | None:
        if result.format is None:
            return None
        shown = display_path(path)
        return ModelFile(
            path=os.fsdecode(path), format=result.format, size=info.st_size,
            model=logical_model_name(shown, result.details), sha256=result.sha256,
            quick_fingerprint=result.quick_fingerprint, device=info.st_dev, inode=info.st_ino,
            mtime_ns=info.st_mtime_ns, path_hex=raw_path_hex(path), details=result.details,
            tensors=result.tensors,
        )

    # ------------------------------------------------------------------ trees

    def scan(self, roots: Iterable[str], *, exclude_dirs: Iterable[str] = (), stats: ScanStats | None = None,
             on_progress: Callable[[ScanStats], None] | None = None,
             stop: threading.Event | None = None) -> Iterator[ModelFile | ScanIssue]:
        """Every model artifact and every problem under the roots; cache hits are answered inline. Once
        `stop` is set the scan ends at the next file it walks (a shutdown must not wait for a whole tree)."""
        stats = stats if stats is not None else ScanStats()
        in_flight: deque[tuple[os.stat_result, Future[list[ModelFile | ScanIssue | None]]]] = deque()
        limit = self.workers * 4
        # A partner examined again through another file is also met by the walk: each model once.
        yielded: set[str] = set()

        def settle(info: os.stat_result | None, outcome: ModelFile | ScanIssue | None
                   ) -> Iterator[ModelFile | ScanIssue]:
            if info is not None:  # None: a partner, counted as a file where the walk meets it
                stats.files += 1
                stats.bytes += info.st_size
            if isinstance(outcome, ScanIssue):
                stats.issues += 1
                yield outcome
            elif outcome is not None and outcome.path not in yielded:
                yielded.add(outcome.path)
                stats.models += 1
                stats.model_bytes += outcome.size
                yield outcome
            if on_progress is not None:
                on_progress(stats)

        def finish(info: os.stat_result, future: Future[list[ModelFile | ScanIssue | None]]
                   ) -> Iterator[ModelFile | ScanIssue]:
            outcome, *partners = future.result()
            yield from settle(info, outcome)
            for partner in partners:
                yield from settle(None, partner)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="ww-scan") as pool:
            for item in walk_files(roots, exclude_dirs=exclude_dirs, counts=stats.walk):
                if stop is not None and stop.is_set():
                    for _, future in in_flight:
                        future.cancel()
                    return
                if isinstance(item, ScanIssue):
                    stats.issues += 1
                    yield item
                    continue
                path, info = item
                # A plain tuple, not FileKey.of(): equal and hash-equal, and this runs once per file.
                cached = self.cache.get(cast(FileKey, (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)))
                if cached is not None and cached.format is None:
                    # The bulk of a rescan: a file already known not to be a model. Counted inline, with
                    # nothing to build or yield; this path is what makes a rescan cost about a stat a file.
                    stats.cache_hits += 1
                    stats.files += 1
                    stats.bytes += info.st_size
                    if on_progress is not None:
                        on_progress(stats)
                    continue
                if cached is not None and (cached.sha256 or self._skip_hash(info)):
                    stats.cache_hits += 1
                    yield from settle(info, self._model_file(path, info, cached))
                    continue
                in_flight.append((info, pool.submit(self._examine_with_partners, path, info)))
                while len(in_flight) >= limit or (in_flight and in_flight[0][1].done()):
                    yield from finish(*in_flight.popleft())
            while in_flight:
                yield from finish(*in_flight.popleft())
        stats.bytes_hashed = self._bytes_hashed


def tensor_plan_of(fd: int, size: int, found: Identification, path: str) -> TensorPlan:
    """The tensor layout the identification parsed already, else the layout parser's (one parse a file);
    for an ONNX external data file, its tensors as the model file that names it describes them."""
    if found.tensor_plan is not None:
        return found.tensor_plan
    if found.format == "onnx" and found.details.get("role") == "external-data":
        return onnx_external.external_plan(path, found)
    return plan_tensors(fd, size, found.format)


def _same_file_still_there(path: str, before: os.stat_result) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino)
