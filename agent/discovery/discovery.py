"""Background discovery: models anywhere under the homes and configured trees, found by content.

One thread, at idle CPU and I/O priority (priority.py), walks the roots in a fixed order (walker.py) and
looks at every regular file with the agent's Scanner, cache first: a file whose (device, inode, size,
mtime_ns) is cached is never opened again, so a re-pass of an unchanged tree costs about a stat a file. All
reading happens on this thread (never handed to a pool), so all of it runs at idle priority and within the
rate limit (throttle.py). What it finds goes onto the ordered queue as ScanFound with a "discovery" Finder,
and each pass ends with DiscoveryDone: the inventory keeps its one writer, the dispatcher, and the protection
policy decides on these files as on any other (agent/models/protection.py).

Resumable: where the pass got to (its number, the root, the last file handled) is kept in the store's
agent_state under "discovery" every few seconds and at stop; the next start continues after that file.
The saved position can run ahead of finds still queued when the agent is killed (not stopped): such a model
is found again by the next pass, or sooner by a file event.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from weightwarden.agent.config import Config
from weightwarden.agent.discovery.observations import DiscoveryDone
from weightwarden.agent.discovery.priority import Priority, make_current_thread_idle
from weightwarden.agent.discovery.roots import Mount, MountFilter, read_mounts
from weightwarden.agent.discovery.throttle import RateLimit
from weightwarden.agent.discovery.walker import WalkTally, walk_from
from weightwarden.agent.events import ModelFile, display_path, format_time, parse_time, utc_now
from weightwarden.agent.models.protection import Finder
from weightwarden.agent.pipeline.files import ScanFound
from weightwarden.agent.scanner import Scanner
from weightwarden.agent.sensors.base import SensorStatus, privilege
from weightwarden.agent.walk import ScanIssue

log = logging.getLogger(__name__)

STATE_KEY = "discovery"
SAVE_SECONDS = 5.0
CACHE_SAVE_ENTRIES = 50_000  # verdicts waiting to be stored: saved from here too, so they never pile up


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    files_per_second: float = 0.0  # 0: no limit
    bytes_per_second: float = 0.0
    interval_seconds: float = 6 * 3600.0
    network: bool = False
    excluded_names: frozenset[str] = frozenset()
    read_bytes: int = 1 << 20  # what identifying a non-model reads at most (head window + zip tail)
    delay_seconds: float = 0.0  # after start, before the first look

    @classmethod
    def from_config(cls, config: Config) -> DiscoverySettings:
        inventory = config.inventory
        return cls(inventory.discover_files_per_second, float(inventory.discover_bytes_per_second),
                   inventory.discover_interval_seconds, inventory.discover_network,
                   frozenset(inventory.exclude_dirs), config.scan.window_bytes + config.scan.tail_bytes,
                   inventory.discover_delay_seconds)


@dataclass
class _State:
    """What is saved: the pass in progress (root None: between passes) and what the last one did."""

    passes_done: int = 0
    root: str | None = None
    after: str | None = None  # the last file handled, under root
    files: int = 0
    models: int = 0
    bytes_read: int = 0
    last_finished: str | None = None
    last_pass: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps({
            "passes_done": self.passes_done,
            "root_hex": os.fsencode(self.root).hex() if self.root is not None else None,
            "after_hex": os.fsencode(self.after).hex() if self.after is not None else None,
            "files": self.files, "models": self.models, "bytes_read": self.bytes_read,
            "last_finished": self.last_finished, "last_pass": self.last_pass}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> _State:
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}

        def path(key: str) -> str | None:
            value = data.get(key)
            try:
                return os.fsdecode(bytes.fromhex(value)) if isinstance(value, str) else None
            except ValueError:
                return None

        return cls(int(data.get("passes_done") or 0), path("root_hex"), path("after_hex"),
                   int(data.get("files") or 0), int(data.get("models") or 0), int(data.get("bytes_read") or 0),
                   data.get("last_finished"), data.get("last_pass"))


class Discovery:
    """The discovery thread, and its line in `weightwarden status` (the StatusReporter interface)."""

    name = "discovery"

    def __init__(self, scanner: Scanner, emit: Callable[..., None], roots: Callable[[], list[str]],
                 settings: DiscoverySettings, *, load_state: Callable[[str], str | None],
                 save_state: Callable[[str, str], None], ignored: Callable[[str], bool] = lambda _p: False,
                 ready: threading.Event | None = None,
                 mounts: Callable[[], dict[str, Mount]] = read_mounts,
                 save_cache: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`roots`: asked at the start of every pass (the homes of accounts created since are walked next
        time); `ready`: set once the start-up scan of the protected roots is done (so its files are not
        hashed twice at once); `ignored`: paths never entered (the agent's data dir)."""
        self.scanner = scanner
        self._emit = emit
        self._roots = roots
        self.settings = settings
        self._load_state = load_state
        self._save_state = save_state
        self._ignored = ignored
        self._ready = ready
        self._mounts = mounts
        self._save_cache = save_cache
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rate = RateLimit(settings.files_per_second, settings.bytes_per_second, clock=clock)
        self.priority: Priority | None = None
        self.phase = "not started"
        self.state = _State.from_json(load_state(STATE_KEY))
        self.current_root: str | None = None
        self.position: str | None = None
        self.pass_number = self.state.passes_done + 1
        self.files_seen = 0  # by this process, across passes: the status line's event counter
        self.cache_hits = 0
        self.issues = 0
        self.tally = WalkTally()
        self.not_covered: list[str] = []
        self.next_pass_at: datetime | None = None
        self._rate_mark = (clock(), 0, 0)  # (time, files, bytes) at the previous status
        self._rates = (0.0, 0.0)
        self._bytes_total = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ww-discovery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        self.phase = "stopped"

    def _run(self) -> None:
        self.priority = make_current_thread_idle()
        if self.priority.message:
            log.warning("discovery could not lower its priority: %s", self.priority.message)
        if self._ready is not None:
            self.phase = "waiting for the start-up scan"
            while not self._ready.wait(0.5):
                if self._stop.is_set():
                    return
        if self.settings.delay_seconds > 0:
            self.phase = "starting soon"
            self.next_pass_at = utc_now() + timedelta(seconds=self.settings.delay_seconds)
            if self._stop.wait(self.settings.delay_seconds):
                return
        while not self._stop.is_set():
            wait = self.seconds_until_due()
            if wait > 0:
                self.phase = "idle until the next pass"
                self.next_pass_at = utc_now() + timedelta(seconds=wait)
                self._stop.wait(wait)
                continue
            try:
                self.run_pass()
            except Exception:  # one failing pass never stops the agent; the next one tries again
                log.exception("discovery pass failed")
                self.phase = "failed; retrying at the next interval"
                self._stop.wait(min(self.settings.interval_seconds, 300.0))

    def seconds_until_due(self) -> float:
        if self.state.root is not None or self.state.passes_done == 0 or not self.state.last_finished:
            return 0.0
        try:
            finished = parse_time(self.state.last_finished)
        except ValueError:
            return 0.0
        return max(0.0, (finished - utc_now()).total_seconds() + self.settings.interval_seconds)

    # ------------------------------------------------------------------ one pass

    def run_pass(self, *, max_files: int | None = None) -> bool:
        """Walk the roots from where the saved state says (or from the start); True when the pass reached
        the end, False when stopped (or after `max_files` files: a bounded pass, for tests)."""
        state = self.state
        roots = list(self._roots())
        resumed = state.root is not None
        start = roots.index(state.root) if resumed and state.root in roots else 0
        after = state.after if resumed and state.root in roots else None
        if not resumed:
            state.files = state.models = state.bytes_read = 0
        self.pass_number = state.passes_done + 1
        self.phase = f"pass {self.pass_number}" + (" (resumed)" if resumed else "")
        self.tally = WalkTally()
        alert_copies = state.passes_done > 0  # the first pass finds what is there: no history, no copies
        mounts = MountFilter(self._mounts(), network=self.settings.network, roots=tuple(roots))
        seen: set[str] = set()
        started, saved, handled = self._clock(), self._clock(), 0
        for index in range(start, len(roots)):
            root = roots[index]
            self.current_root, state.root = root, root
            state.after = after if index == start else None
            for path, info in walk_from(root, state.after, tally=self.tally, skip_mount=mounts.skip_reason,
                                        skip_dir=self._ignored, excluded_names=self.settings.excluded_names):
                if self._stop.is_set() or (max_files is not None and handled >= max_files):
                    self._save()
                    self.phase = "stopped" if self._stop.is_set() else "paused"
                    return False
                self._look(path, info, root, alert_copies, seen)
                handled += 1
                state.after = self.position = path
                if self._clock() - saved >= SAVE_SECONDS or self.scanner.cache.unsaved_count >= CACHE_SAVE_ENTRIES:
                    self._save()
                    saved = self._clock()
        self.not_covered = list(self.tally.not_covered)
        done = DiscoveryDone(
            self.pass_number, tuple(roots), frozenset(seen), not resumed, state.files, state.models,
            state.bytes_read, self.cache_hits, self.issues + self.tally.unreadable, self._clock() - started,
            tuple(self.not_covered))
        state.passes_done += 1
        state.root = state.after = None
        state.last_finished = format_time(utc_now())
        state.last_pass = {"pass": done.pass_number, "files": done.files, "models": done.models,
                           "seconds": round(done.seconds, 3), "complete": done.complete}
        self._save()
        self._emit(done)
        self.current_root = self.position = None
        self.phase = "pass done"
        return True

    def _look(self, path: str, info: os.stat_result, root: str, alert_copies: bool, seen: set[str]) -> None:
        state = self.state
        state.files += 1
        self.files_seen += 1
        key: Any = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self.scanner.cache.get(key)
        if cached is not None and cached.format is None:
            self.cache_hits += 1
            self._wait(self.rate.take(1, 0))
            return
        fresh = cached is None or not cached.sha256
        outcome = self.scanner.examine(path, info)
        read = 0
        if fresh:
            read = info.st_size if isinstance(outcome, ModelFile) else min(info.st_size, self.settings.read_bytes)
        else:
            self.cache_hits += 1
        found = [outcome]
        if isinstance(outcome, ModelFile):
            # Its .bin, external data ... (or this shard's index) may be cached as "not a model" from before
            # it existed: look again, as the scanner's own tree scan does.
            for partner in self.scanner.stale_partners(path, outcome):
                found.append(self.scanner.examine(partner, recheck_non_model=True))
        for item in found:
            if isinstance(item, ModelFile) and item.path not in seen:
                seen.add(item.path)
                state.models += 1
                self._emit(ScanFound(item, alert_copies, Finder("discovery", root, self.pass_number)))
            elif isinstance(item, ScanIssue) and not item.reason.startswith("skipped"):
                self.issues += 1
                self.tally.note(item.path, item.reason)
        state.bytes_read += read
        self._bytes_total += read
        self._wait(self.rate.take(1, read))

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)

    def _save(self) -> None:
        if self._save_cache is not None and self.scanner.cache.unsaved_count >= CACHE_SAVE_ENTRIES:
            try:
                self._save_cache()
            except Exception:
                log.exception("discovery could not save the fingerprint cache")
        try:
            self._save_state(STATE_KEY, self.state.to_json())
        except Exception:  # the store is closing or busy: the position is saved again soon, or re-walked
            log.exception("discovery could not save its position")

    # ------------------------------------------------------------------ status

    def _measure(self) -> tuple[float, float]:
        now = self._clock()
        mark, files, nbytes = self._rate_mark
        if now - mark >= 1.0:
            self._rates = ((self.files_seen - files) / (now - mark), (self._bytes_total - nbytes) / (now - mark))
            self._rate_mark = (now, self.files_seen, self._bytes_total)
        return self._rates

    def status(self) -> SensorStatus:
        files_rate, _ = self._measure()
        snapshot = self.snapshot()
        degraded = self.priority is not None and not self.priority.idle
        state = "stopped" if self.phase == "stopped" else "degraded" if degraded else "running"
        where = f" under {display_path(self.current_root)}" if self.current_root else ""
        message = (f"{self.phase}{where}: {snapshot['files_seen']:,} files, {snapshot['models_found']:,} models "
                   f"this pass; {snapshot['passes_done']} passes done")
        if degraded and self.priority is not None:
            message += f"; not at idle priority ({self.priority.message})"
        return SensorStatus(self.name, state, "idle-priority walk", privilege(), message, self.files_seen,
                            round(files_rate, 2), 0, 0)

    def snapshot(self) -> dict[str, Any]:
        """The `discovery` entry of the status snapshot (`weightwarden status`, the app's Overview)."""
        files_rate, bytes_rate = self._measure()
        state = self.state
        priority = self.priority
        return {
            "state": self.phase,
            "pass": self.pass_number,
            "passes_done": state.passes_done,
            "files_seen": state.files,
            "models_found": state.models,
            "bytes_read": state.bytes_read,
            "cache_hits": self.cache_hits,
            "issues": self.issues + self.tally.unreadable,
            "current_root": display_path(self.current_root) if self.current_root else None,
            "position": display_path(self.position) if self.position else None,
            "resumable_position": display_path(state.after) if state.after else None,
            "files_per_second": round(files_rate, 1),
            "bytes_per_second": round(bytes_rate),
            "last_pass_finished": state.last_finished,
            "last_pass": state.last_pass,
            "next_pass_at": format_time(self.next_pass_at) if self.next_pass_at else None,
            "limits": {"files_per_second": self.settings.files_per_second,
                       "bytes_per_second": self.settings.bytes_per_second,
                       "interval_seconds": self.settings.interval_seconds},
            "priority": None if priority is None else {"nice": priority.nice, "io_class": priority.io_class,
                                                       "idle": priority.idle, "message": priority.message},
            "skipped": {"mounts": self.tally.mounts_skipped, "unreadable": self.tally.unreadable,
                        "loops": self.tally.loops_avoided, "symlinks": self.tally.symlinks_skipped,
                        "special": self.tally.special_skipped, "excluded_dirs": self.tally.excluded_dirs},
            "not_covered": list(self.tally.not_covered or self.not_covered),
        }
