"""File sensor: file changes under the watched roots as FileObservation values. It decides nothing.

On Linux the roots are read by our own inotify reader (agent/sensors/inotify_tree.py): one instance, one
thread, the kernel's overflow event handled directly; elsewhere watchdog's native observer (FSEvents)
does the reading. Opens and no-write closes are never asked for (access is the access sensor's job), which
also keeps the agent's own reads while hashing from echoing back as activity.

A root that cannot be watched natively (no inotify instance left, the root itself refused, or the per-user
watch limit reached below it, at start or later by a new directory) is polled every POLL_SECONDS with
watchdog's PollingObserver, "instead" or "as well", and the sensor says so through `on_health`. A queue
overflow becomes one "overflow" observation (the agent rescans the watched roots), counted as a drop.

Roots can be added and removed while running (`add_root`, `remove_root`: the agent's answer to a mount
that appeared or went, or a filesystem the fs-writes sensor cannot mark); once a new root is watched the
sensor says so with a `WatchStarted` observation, so what was already there can be looked at.

Every observation and health report passes one gate that stop() closes: once stop() has returned,
nothing more is delivered (a delivery in progress is waited for).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.sensors.base import Counters, SensorStatus, privilege
from weightwarden.agent.sensors.inotify_tree import Emit, InotifyTree

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
NATIVE = "inotify" if sys.platform.startswith("linux") else "watchdog"

# watchdog event_type -> our kind; the rest (opened, closed_no_write, attrib-only) is not file content news
_KINDS = {"created": "created", "modified": "modified", "closed": "closed", "moved": "moved",
          "deleted": "deleted"}
_CONTENT_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, DirCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, DirMovedEvent,
    FileDeletedEvent, DirDeletedEvent]


@dataclass(frozen=True, slots=True)
class FileObservation:
    kind: str  # created | modified | closed | moved | deleted | overflow
    path: str
    dest_path: str | None = None
    is_directory: bool = False
    pid: int | None = None  # the writer, when the sensor knows it (fs-writes: fanotify reports it)
    size: int | None = None  # a closed file's size, when the sensor looked (fs-writes does)
    process: ProcessInfo | None = None  # the writer as the sensor found it at the time (fs-writes)


@dataclass(frozen=True, slots=True)
class WatchStarted:
    """A root or mount added while running is now watched: what was there before can be looked at."""

    path: str
    method: str  # inotify | polling | fanotify


@dataclass(frozen=True, slots=True)
class SensorHealth:
    sensor: str
    status: str  # running | degraded | stopped
    message: str


class _Handler(FileSystemEventHandler):
    """watchdog's events (the polling fallback, and the native observer off Linux) -> observations."""

    def __init__(self, deliver: Emit) -> None:
        self._deliver = deliver

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = _KINDS.get(event.event_type)
        if kind is None:
            return
        if event.is_directory and kind in ("modified", "closed"):
            return  # a directory's mtime changes with every entry; the entry's own event tells us more
        dest = os.fsdecode(event.dest_path) if event.dest_path else None
        self._deliver(kind, os.fsdecode(event.src_path), dest, event.is_directory)


class FileSensor:
    name = "files"

    def __init__(self, roots: Iterable[str], sink: Callable[[FileObservation | WatchStarted], None],
                 on_health: Callable[[SensorHealth], None]) -> None:
        self.roots = list(roots)
        self._sink = sink
        self._on_health = on_health
        self.counters = Counters()
        self._gate = threading.Lock()  # held while delivering; stop() closes it
        self._open = False
        self._lock = threading.Lock()  # the parts below, changed by the reading threads too
        self._state = "stopped"
        self._tree: InotifyTree | None = None
        self._native: BaseObserver | None = None
        self._native_roots: list[str] = []
        self._polling: BaseObserver | None = None
        self.polled_roots: list[str] = []
        self._watches: dict[str, list[tuple[BaseObserver, ObservedWatch]]] = {}  # root -> watchdog's watches
        self._handler = _Handler(self._deliver)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._gate:
            self._open = True
        with self._lock:
            self._state = "running"
        if NATIVE == "inotify":
            self._start_inotify()
        else:
            self._start_watchdog()
        self._health("running", f"watching {len(self.roots)} roots")

    def stop(self) -> None:
        with self._gate:  # waits for a delivery in progress; none after this
            self._open = False
        with self._lock:
            self._state = "stopped"  # a reading thread can no longer start the polling fallback
            tree, self._tree = self._tree, None
            observers = [o for o in (self._native, self._polling) if o is not None]
            self._native = self._polling = None
            self._native_roots.clear()
            self.polled_roots.clear()
            self._watches.clear()
        if tree is not None:
            tree.stop()
        for observer in observers:
            observer.stop()
        for observer in observers:
            observer.join(timeout=10)

    def status(self) -> SensorStatus:
        with self._lock:
            state, polled, native = self._state, len(self.polled_roots), len(self._native_roots)
            tree = self._tree
        if state == "running" and polled:
            state = "degraded"
        method = NATIVE if native else "polling"
        if native and polled:
            method += "+polling"
        message = f"watching {len(self.roots)} roots"
        if tree is not None:
            message += f" ({tree.watches} directories)"
        if polled:
            message += f"; {polled} polled every {POLL_SECONDS:g} s"
        return SensorStatus(self.name, state, method, privilege(), message, self.counters.events,
                            self.counters.rate(), self.counters.drops, tree.queued() if tree is not None else 0)

    def pause(self) -> None:
        """Leave events in the kernel's queue until resume() (tests: a real overflow). inotify only."""
        if self._tree is not None:
            self._tree.pause()

    def resume(self) -> None:
        if self._tree is not None:
            self._tree.resume()

    def add_root(self, root: str) -> None:
        """Watch one more root while running (before start(): one more root to start with)."""
        with self._lock:
            if root in self.roots:
                return
            self.roots.append(root)
            running, tree, native = self._state != "stopped", self._tree, self._native
        if not running:
            return
        if tree is not None:
            tree.add_root(root)  # walked on its reading thread; _watched() reports the outcome
        elif native is not None:
            try:
                watch = native.schedule(self._handler, root, recursive=True, event_filter=_CONTENT_EVENTS)
            except OSError as error:
                self._poll(root, f"native watching failed ({error.strerror or error})", also=False)
            else:
                with self._lock:
                    self._native_roots.append(root)
                    self._watches.setdefault(root, []).append((native, watch))
            self._started(root)
        else:  # no native watching at all here: polled
            self._poll(root, "no inotify instance", also=False)
            self._started(root)

    def remove_root(self, root: str) -> None:
        """Stop watching a root (a mount that went); nothing when it is not one of ours."""
        with self._lock:
            if root not in self.roots:
                return
            self.roots.remove(root)
            tree = self._tree
            if root in self._native_roots:
                self._native_roots.remove(root)
            watches = self._watches.pop(root, [])
            if root in self.polled_roots:
                self.polled_roots.remove(root)
        if tree is not None:
            tree.remove_root(root)
        for observer, watch in watches:
            with contextlib.suppress(KeyError, OSError):
                observer.unschedule(watch)

    def _watched(self, root: str, natively: bool) -> None:
        if natively:
            with self._lock:
                if root not in self._native_roots:
                    self._native_roots.append(root)
        self._started(root)

    def _started(self, root: str) -> None:
        method = "inotify" if root in self._native_roots else "polling"
        with self._gate:
            if not self._open:
                return
            try:
                self._sink(WatchStarted(root, method if NATIVE == "inotify" else "watchdog"))
            except Exception:
                log.exception("file sensor: watch-started report failed")

    def _start_inotify(self) -> None:
        tree = InotifyTree(self._deliver, self._unwatched, self._watched)
        try:
            native = tree.start(self.roots)
        except OSError as error:  # no inotify instance for this user (EMFILE)
            for root in self.roots:
                self._poll(root, error.strerror or str(error), also=False)
            return
        with self._lock:
            self._tree = tree
            self._native_roots = native

    def _start_watchdog(self) -> None:
        native = Observer()
        native.start()
        with self._lock:
            self._native = native
        for root in self.roots:
            try:
                watch = native.schedule(self._handler, root, recursive=True, event_filter=_CONTENT_EVENTS)
                with self._lock:
                    self._native_roots.append(root)
                    self._watches.setdefault(root, []).append((native, watch))
            except OSError as error:
                self._poll(root, f"native watching failed ({error.strerror or error})", also=False)

    # ------------------------------------------------------------------ delivery

    def _deliver(self, kind: str, path: str, dest_path: str | None, is_directory: bool) -> None:
        observation = FileObservation(kind, path, dest_path, is_directory)
        with self._gate:
            if not self._open:
                return
            if kind == "overflow":
                self.counters.drop()
            else:
                self.counters.add()
            try:
                self._sink(observation)
            except Exception:  # the reading thread carries on whatever the receiver does
                log.exception("file observation %s failed", kind)

    def _health(self, status: str, message: str) -> None:
        with self._gate:
            if not self._open:
                return
            try:
                self._on_health(SensorHealth(self.name, status, message))
            except Exception:
                log.exception("file sensor health report failed")

    def _unwatched(self, root: str, why: str, partly: bool) -> None:
        self._poll(root, why, also=partly)

    def _poll(self, root: str, why: str, *, also: bool) -> None:
        with self._lock:
            if self._state == "stopped" or root in self.polled_roots:
                return
            if self._polling is None:
                self._polling = PollingObserver(timeout=POLL_SECONDS)
                self._polling.start()
            try:
                watch = self._polling.schedule(self._handler, root, recursive=True)
            except OSError as error:  # gone since the configuration was read
                polled = f"cannot be polled either ({error.strerror or error}): not watched"
            else:
                self.polled_roots.append(root)
                self._watches.setdefault(root, []).append((self._polling, watch))
                polled = f"polling every {POLL_SECONDS:g} s " + ("as well" if also else "instead")
        self._health("degraded", f"{root}: {why}; {polled}")
