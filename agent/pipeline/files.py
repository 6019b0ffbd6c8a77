"""The file pipeline: what the file sensor saw -> settle -> examine -> accepted, gone or moved.

Two kinds of thread take part, and never share state:
- the dispatcher's thread runs `observe`, the result handlers and `tick`: it notes paths to settle, keeps
  the inventory (through InventoryUpkeep) and hands due paths and rescans to the pool;
- a small pool examines settled paths and scans trees (identify, fingerprint: the slow part), and hands
  what it found back to the ordered queue as typed observations (Identified, Examined, ScanFound,
  ScanIssue, ScanDone), so inventory changes and copy alerts happen in order with everything else.

One rescan request set: a new or moved-in directory, a lost-events overflow, "scan now" from the app, all
ask for their roots to be scanned again; the next tick sends each root to the pool once (a root inside
another one asked for is left to it).

A readable log: the rescans that merely follow file activity (a directory created or moved in: a `git
clone` makes thousands) are not one `scan-finished` each. They are summed up, and one `scan-finished` says
what a burst of them covered once they have been quiet for BURST_QUIET_SECONDS; what they find (models,
problems) is recorded as it is found, as always.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from weightwarden.agent.config import Config
from weightwarden.agent.events import (
    Action,
    Alert,
    Category,
    Event,
    FileInfo,
    ModelFile,
    ProcessInfo,
    Record,
    display_path,
)
from weightwarden.agent.models.protection import RESCAN, Finder
from weightwarden.agent.paths import drop_nested
from weightwarden.agent.pipeline.activity_events import health_event
from weightwarden.agent.pipeline.inventory_upkeep import InventoryUpkeep
from weightwarden.agent.scanner import Scanner, ScanStats
from weightwarden.agent.scope import Scope, compute_scope
from weightwarden.agent.sensors.files import FileObservation, SensorHealth
from weightwarden.agent.settle import Settler
from weightwarden.agent.walk import ScanIssue

# At shutdown, the longest we wait for examinations and scans in flight: what is left then is found by the
# next start's scan of the watched roots. systemd kills the agent 90 s after asking it to stop.
FINISH_SECONDS = 30.0
BURST_QUIET_SECONDS = 5.0  # follow-up rescans are summed up until none came for this long
FOLLOW_UP = "new directory"  # the reason of a rescan that follows file activity (summed up per burst)
# Below this no file holds weights worth protecting (a thousand float32s). Filesystem marks report every
# write on the machine, most of them small (sources, configs, logs, lock files): a closed file the sensor
# measured below it is not even settled, unless it is an inventoried model changing.
SMALLEST_MODEL_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Identified:
    """A new file is a model: quick fingerprint known, SHA-256 not yet. A copy can be told from it already."""

    model: ModelFile


@dataclass(frozen=True, slots=True)
class Examined:
    """A settled path was examined: a model file, not a model (None), or why it could not be told."""

    path: str
    outcome: ModelFile | ScanIssue | None
    partners: tuple[str, ...] = ()  # files of its pair or folder model cached as "not a model": look again


@dataclass(frozen=True, slots=True)
class ScanFound:
    """A tree scan (or a discovery pass: `finder`) met a model file."""

    model: ModelFile
    alert_copies: bool
    finder: Finder = RESCAN


@dataclass(frozen=True, slots=True)
class ScanDone:
    roots: tuple[str, ...]
    seen: frozenset[str]
    stats: dict[str, int]
    prune: bool  # the scan ran to the end: inventoried files under the roots it did not meet are gone
    seconds: float
    reason: str = "start"


@dataclass(frozen=True, slots=True)
class BurstQuiet:
    """The follow-up rescans of a burst of file activity have been quiet a while: time for their summary."""


@dataclass(frozen=True, slots=True)
class RescanRequest:
    roots: tuple[str, ...]
    reason: str


class FilePipeline:
    def __init__(self, config: Config, scanner: Scanner, upkeep: InventoryUpkeep, emit: Callable[..., None],
                 isolated: Callable[..., Any], save_cache: Callable[[], None], *,
                 executor: Executor | None = None, scope: Scope | None = None,
                 who: Callable[[int], ProcessInfo] | None = None) -> None:
        """`who`: the process of a pid, from the process cache (it outlives the process): names the writer of a
        copy when the file sensor reported it (fanotify filesystem marks do; inotify does not)."""
        self.config = config
        # What is inventoried and watched (agent/scope); replaced by use_scope on the dispatcher's thread.
        self.scope = scope if scope is not None else compute_scope(config)
        self.scanner = scanner
        self.upkeep = upkeep
        self.inventory = upkeep.inventory
        self.settler = Settler(config.watch.settle_seconds)
        self._emit = emit  # the examination pool's source on the ordered queue
        self._isolated = isolated
        self._save_cache = save_cache
        # tests pass agent.pipeline.testing.SynchronousExecutor: examinations run at once, no threads
        self._pool = executor or ThreadPoolExecutor(config.scan.workers, thread_name_prefix="ww-examine")
        self._pending: list[Future[Any]] = []
        self._rescans: dict[str, str] = {}  # root -> why
        self._burst: _Burst | None = None
        self._alerted: dict[str, Alert] = {}  # copy alerts raised by a look that the file then outran
        self._writers: dict[str, int | ProcessInfo] = {}  # path -> its last writer (or pid), until examined
        self._who = who
        self._stopping = threading.Event()
        self._initial: threading.Thread | None = None
        self.initial_scan_done = threading.Event()  # discovery waits for it: the roots' files are hashed once
        self._ignored_prefix = os.path.realpath(config.data_dir).rstrip("/") + "/"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.config.inventory.scan_on_start:
            self._initial = threading.Thread(target=self._isolated, args=(self._initial_scan,),
                                             name="ww-initial-scan", daemon=True)
            self._initial.start()
        else:
            self.initial_scan_done.set()

    def finish(self, drain: Callable[[], int]) -> None:
        """Shutdown: scans stop early, paths still settling are examined now (a copy finished just before
        shutdown is not lost), and what the pool still finds is handled through `drain`."""
        self._stopping.set()
        deadline = time.monotonic() + FINISH_SECONDS
        while time.monotonic() < deadline:
            drain()
            for path in self.settler.due(float("inf")):
                self._submit(self._examine, path, False)
            self._pending = [f for f in self._pending if not f.done()]
            if not self._pending and not len(self.settler):
                break
            wait(self._pending, timeout=max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._initial is not None:
            self._initial.join(timeout=max(0.0, deadline - time.monotonic()))
        drain()

    # ------------------------------------------------------------------ dispatcher thread

    def observe(self, obs: FileObservation, at: datetime) -> list[Record]:
        if obs.kind == "overflow":
            self.request_rescan(self.scope.watch_roots, "file events lost")
            return [health_event(SensorHealth(
                "files", "degraded", "file event queue overflowed; events were lost, rescanning watched roots"), at)]
        if self._ignored(obs.path) and (obs.dest_path is None or self._ignored(obs.dest_path)):
            return []
        if obs.kind == "closed" and obs.size is not None and not self.worth_examining(obs.path, obs.size):
            return []
        if obs.kind == "closed" and obs.pid is not None:
            # the writer as the sensor named it, else its pid, looked up only if the file is a model
            self._writers[obs.path] = obs.process or obs.pid
        if obs.kind == "deleted":
            self._writers.pop(obs.path, None)
            self.settler.forget(obs.path)
            return self.upkeep.gone(obs.path, obs.is_directory, reason="deleted", at=at)
        if obs.kind == "moved":
            self.settler.forget(obs.path)
            dest = obs.dest_path or obs.path
            moved = self.upkeep.moved(obs.path, dest, obs.is_directory, at=at)
            if obs.is_directory:
                self.request_rescan([dest], FOLLOW_UP)  # unknown files inside are examined by the rescan
            elif not moved:
                self.settler.touch(dest, float("-inf"))  # an unknown file renamed into view: examine now
            return moved
        if obs.is_directory:
            self.request_rescan([obs.path], FOLLOW_UP)  # `cp -r`, an unpacked archive: files may predate our watch
        elif obs.kind == "closed":
            self.settler.closed(obs.path)
        else:
            self.settler.touch(obs.path, time.monotonic())
        return []

    def worth_examining(self, path: str, size: int) -> bool:
        """Whether a closed file of this size can matter: a model's size, or an inventoried file changing.
        The fs-writes sensor asks it on its own thread (for the many small writes of a `tar -x` nothing
        more happens) and so does `observe`; it reads the inventory only, which is safe from any thread."""
        return size >= SMALLEST_MODEL_BYTES or self.inventory.get(path) is not None

    def examining(self, path: str) -> bool:
        """Whether a closed file is still settling or being examined (is it a model, a copy?): lineage waits
        for the answer before it counts the file as an output."""
        return path in self._writers or self.settler.holds(path)

    def worth_a_deletion(self, path: str, is_directory: bool) -> bool:
        """Whether a deletion can matter: an inventoried file, or a folder holding one (a file still settling
        that is deleted is simply found gone when its turn comes). Asked on the fs-writes sensor's thread."""
        return self.inventory.get(path) is not None or (is_directory and self.inventory.holds_under(path))

    def request_rescan(self, roots: list[str] | tuple[str, ...], reason: str) -> None:
        for root in roots:
            if self._rescans.get(root, FOLLOW_UP) == FOLLOW_UP:  # a reason worth reporting wins
                self._rescans[root] = reason

    def use_scope(self, scope: Scope) -> None:
        """The roots in effect from now on (an overflow rescans these); the caller asks for new roots' scans."""
        self.scope = scope

    def rescan(self, request: RescanRequest, at: datetime) -> list[Record]:
        self.request_rescan(request.roots, request.reason)
        return []

    def tick(self, now: float) -> float | None:
        """Hand due paths and requested rescans to the pool; seconds until the next path is due."""
        if not self._stopping.is_set():
            for path in self.settler.due(now):
                self._submit(self._examine, path, False)
            rescans, self._rescans = self._rescans, {}
            for root in drop_nested(sorted(rescans)):  # sensors' and config paths are already absolute
                self._submit(self._scan_tree_set, [root], True, True, rescans.get(root, FOLLOW_UP))
        self._pending = [f for f in self._pending if not f.done()]
        burst = self._burst
        if burst is not None and not burst.closing and now - burst.last >= BURST_QUIET_SECONDS:
            burst.closing = True
            self._emit(BurstQuiet())
        due = self.settler.seconds_to_next(now)
        if burst is not None and not burst.closing:
            quiet_in = burst.last + BURST_QUIET_SECONDS - now
            due = quiet_in if due is None else min(due, quiet_in)
        return due

    def identified(self, found: Identified, at: datetime) -> list[Record]:
        if found.model.path in self._alerted:
            return []  # an earlier look at this copy raised it, then the file changed under us
        alert = self.upkeep.copy_alert(found.model, self._writer(found.model.path))
        if alert is None:
            return []
        self._alerted[found.model.path] = alert
        return [alert]

    def examined(self, found: Examined, at: datetime) -> list[Record]:
        outcome = found.outcome
        if isinstance(outcome, ScanIssue) and outcome.changing:
            # `cp -p`, `rsync -a`, `mv` across filesystems set the mtime after closing the copy, and the
            # file sensor does not report attribute changes: look again once it has settled (keeping the
            # copy alert this look raised, if any).
            self.settler.touch(found.path, time.monotonic())
            return []
        alert = self._alerted.pop(found.path, None)
        writer = self._writer(found.path) if isinstance(outcome, ModelFile) and alert is None else None
        self._writers.pop(found.path, None)
        if isinstance(outcome, ScanIssue):
            return self.issue(outcome, at)
        if outcome is None:
            if self.inventory.get(found.path) is not None:
                return self.upkeep.gone(found.path, False, reason="no longer a model file", at=at)
            return []
        records = self.upkeep.accept(outcome, Action.MODEL_CREATED, alert, alert_copies=True, at=at,
                                     finder=Finder("file-event"), writer=writer)
        for partner in found.partners:
            self._submit(self._examine, partner, True)
        return records

    def _writer(self, path: str) -> ProcessInfo | None:
        writer = self._writers.get(path)
        if isinstance(writer, int):
            return self._who(writer) if self._who is not None else None
        return writer

    def found(self, found: ScanFound, at: datetime) -> list[Record]:
        previous = self.inventory.get(found.model.path)
        action = Action.MODEL_DISCOVERED if previous is None else Action.MODEL_MODIFIED
        # A file event's first look may have raised the copy alert already (a copy onto a mount that is
        # being rescanned as it is watched): the scan does not raise it again.
        records = self.upkeep.accept(found.model, action, self._alerted.get(found.model.path),
                                     alert_copies=found.alert_copies, at=at, finder=found.finder)
        accepted = self.inventory.get(found.model.path)
        if previous is None and accepted is not None and accepted.protected:
            records += self._isolated(self.upkeep.posture, found.model, at) or []
        return records

    def issue(self, issue: ScanIssue, at: datetime) -> list[Record]:
        if issue.gone:  # deleted before we could read it (`.git/index.lock`...): a race, not a problem
            return []
        return [Event(Action.SCAN_ERROR, Category.FILE, f"{issue.path}: {issue.reason}",
                      file=FileInfo(path=issue.path), severity=1, details={"reason": issue.reason}, time=at)]

    def scan_done(self, done: ScanDone, at: datetime) -> list[Record]:
        records: list[Record] = []
        if done.prune:
            for root in done.roots:
                for model in self.inventory.under(root):
                    if model.path not in done.seen:
                        records += self.upkeep.gone(model.path, False, reason="missing at rescan", at=at)
        if done.reason == FOLLOW_UP:
            if self._burst is None or self._burst.closing:
                self._burst = self._burst or _Burst()
                self._burst.closing = False
            self._burst.add(done, time.monotonic())
            return records
        stats = done.stats
        records.append(Event(
            Action.SCAN_FINISHED, Category.FILE,
            f"scanned {stats['files']} files, {stats['models']} model files under {len(done.roots)} roots",
            details={"roots": [display_path(r) for r in done.roots], **stats, "seconds": round(done.seconds, 3),
                     "reason": done.reason},
            time=at))
        return records

    def burst_quiet(self, _: BurstQuiet, at: datetime) -> list[Record]:
        """One `scan-finished` for all the follow-up rescans of a burst of file activity."""
        burst, self._burst = self._burst, None
        if burst is None or not burst.closing:  # more came since: the next quiet spell reports them all
            if burst is not None:
                self._burst = burst
            return []
        stats = burst.stats
        return [Event(
            Action.SCAN_FINISHED, Category.FILE,
            f"scanned {burst.scans} new or moved-in directories: {stats['files']} files, {stats['models']} model "
            f"files", time=at,
            details={"roots": [display_path(r) for r in burst.roots], "directories": burst.scans, **stats,
                     "seconds": round(burst.seconds, 3), "reason": FOLLOW_UP})]

    # ------------------------------------------------------------------ pool threads

    def _submit(self, work: Callable[..., None], *args: Any) -> None:
        self._pending.append(self._pool.submit(self._isolated, work, *args))

    def _examine(self, path: str, recheck_non_model: bool) -> None:
        if os.path.isdir(path):
            self._scan_tree_set([path], True, True, FOLLOW_UP)
            return
        outcome = self.scanner.examine(path, on_identified=self.on_identified, recheck_non_model=recheck_non_model)
        partners: tuple[str, ...] = ()
        if isinstance(outcome, ModelFile):
            # Its .bin, external data, ... (or the index of this data shard) may have been examined before
            # this file existed, and cached as "not a model".
            partners = tuple(self.scanner.stale_partners(path, outcome))
        self._emit(Examined(path, outcome, partners))

    def on_identified(self, partial: ModelFile) -> None:
        """The scanner knows a file is a model before it has hashed it all: let the dispatcher judge it now."""
        self._emit(Identified(partial))

    def _initial_scan(self) -> None:
        """Inventory the protected roots, then look at the watched ones for copies made while we were away."""
        try:
            first_run = len(self.inventory) == 0
            scope = self.scope
            self._scan_tree_set(scope.protected_roots, not first_run, True)
            extra = [r for r in scope.watch_roots if r not in scope.protected_roots]
            if extra and not first_run:
                self._scan_tree_set(extra, True, False)
        finally:
            self.initial_scan_done.set()

    def _scan_tree_set(self, roots: list[str], alert_copies: bool, prune: bool, reason: str = "start") -> None:
        stats = ScanStats()
        seen: set[str] = set()
        started = time.monotonic()
        for item in self.scanner.scan(roots, exclude_dirs=self.config.inventory.exclude_dirs, stats=stats,
                                      stop=self._stopping):
            if self._stopping.is_set():
                break
            if isinstance(item, ScanIssue):
                self._emit(item)
            elif not self._ignored(item.path):
                seen.add(item.path)
                self._emit(ScanFound(item, alert_copies, Finder("scan", _root_of(item.path, roots))))
        self._save_cache()
        self._emit(ScanDone(tuple(roots), frozenset(seen), {
            "files": stats.files, "models": stats.models, "bytes": stats.bytes, "cache_hits": stats.cache_hits,
            "issues": stats.issues}, prune and not self._stopping.is_set(), time.monotonic() - started, reason))

    def _ignored(self, path: str) -> bool:
        return (path.rstrip("/") + "/").startswith(self._ignored_prefix)

    def ignored(self, path: str) -> bool:
        """The agent's own data dir: never inventoried (discovery asks too)."""
        return self._ignored(path)


class _Burst:
    """What the follow-up rescans of one burst of file activity covered."""

    ROOTS_LISTED = 20

    def __init__(self) -> None:
        self.roots: list[str] = []
        self.scans = 0
        self.stats: dict[str, int] = {}
        self.seconds = 0.0
        self.last = 0.0  # monotonic time of the latest rescan's end
        self.closing = False  # its summary was asked for (BurstQuiet on its way)

    def add(self, done: ScanDone, now: float) -> None:
        self.scans += 1
        self.roots.extend(done.roots[:max(0, self.ROOTS_LISTED - len(self.roots))])
        for key, value in done.stats.items():
            self.stats[key] = self.stats.get(key, 0) + value
        self.seconds += done.seconds
        self.last = now


def _root_of(path: str, roots: list[str]) -> str | None:
    for root in sorted(roots, key=len, reverse=True):
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return root
    return None
