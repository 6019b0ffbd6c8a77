"""File sensor: watchdog on the watched roots, translated into FileObservation values. It decides nothing.

Opens and no-write closes are ignored here (access is the access sensor's job), which also keeps the
agent's own reads while hashing from echoing back as activity. When a root cannot be watched natively
(inotify watch limit) the sensor falls back to polling for that root and says so through `on_health`.
watchdog silently skips a subdirectory it cannot watch, so after adding the watches (and whenever a new
directory appears) the sensor probes whether the watch limit is exhausted: if so, every natively watched
root is polled as well, since some of its directories may be blind. A queue overflow becomes an
"overflow" observation (the agent rescans the watched roots).
"""

from __future__ import annotations

import ctypes
import errno
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
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from weightwarden.agent.sensors import fanotify
from weightwarden.agent.sensors.base import SensorStatus, privilege

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0

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


@dataclass(frozen=True, slots=True)
class SensorHealth:
    sensor: str
    status: str  # running | degraded | stopped
    message: str


def watch_limit_reached(path: str) -> str | None:
    """Why no further inotify watch can be added for this user now (limit reached), or None.

    Probes with a throwaway inotify instance: one watch on `path`, removed at once with the instance."""
    if not sys.platform.startswith("linux"):
        return None
    libc = fanotify.libc()  # the C library, loaded once (with errno kept)
    fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    if fd < 0:
        err = ctypes.get_errno()
        return f"inotify instance limit reached ({_limit('max_user_instances')})" if err == errno.EMFILE else None
    try:
        # IN_DELETE_SELF: any mask will do
        if libc.inotify_add_watch(fd, os.fsencode(path), 0x400) < 0 and ctypes.get_errno() == errno.ENOSPC:
            return f"inotify watch limit reached ({_limit('max_user_watches')})"
        return None
    finally:
        os.close(fd)


def _limit(name: str) -> str:
    try:
        with open(f"/proc/sys/fs/inotify/{name}") as value:
            return f"fs.inotify.{name} = {value.read().strip()}"
    except OSError:
        return f"fs.inotify.{name}"


class _Handler(FileSystemEventHandler):
    def __init__(self, sink: Callable[[FileObservation], None],
                 on_new_directory: Callable[[], None] = lambda: None) -> None:
        self._sink = sink
        self._on_new_directory = on_new_directory

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = _KINDS.get(event.event_type)
        if kind is None:
            return
        if event.is_directory and kind in ("created", "moved"):
            self._on_new_directory()  # watchdog adds watches for it, silently skipping any it cannot add
        if event.is_directory and kind in ("modified", "closed"):
            return  # a directory's mtime changes with every entry; the entry's own event tells us more
        dest = os.fsdecode(event.dest_path) if event.dest_path else None
        self._sink(FileObservation(kind, os.fsdecode(event.src_path), dest, event.is_directory))


class _OverflowWatcher(logging.Handler):
    """watchdog reports an inotify queue overflow only through its logger; make it an observation.

    One overflow is logged once for the inotify instance and once more per recursive root it then
    re-watches ("reconciling"): only the first is the news."""

    def __init__(self, sink: Callable[[FileObservation], None]) -> None:
        super().__init__(logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().lower()
        if "overflow" in message and "reconciling" not in message:
            self._sink(FileObservation("overflow", ""))


class FileSensor:
    name = "files"

    def __init__(self, roots: Iterable[str], sink: Callable[[FileObservation], None],
                 on_health: Callable[[SensorHealth], None]) -> None:
        self.roots = list(roots)
        self._sink = sink
        self._on_health = on_health
        self._observers: list[BaseObserver] = []
        self._overflow = _OverflowWatcher(sink)
        self._handler = _Handler(sink, self._check_watch_limit)
        self._native_roots: list[str] = []
        self.polled_roots: list[str] = []
        self._polling: BaseObserver | None = None
        self._lock = threading.Lock()
        self._log_level: int | None = None

    def start(self) -> None:
        watchdog_log = logging.getLogger("watchdog.observers")
        watchdog_log.addHandler(self._overflow)
        if watchdog_log.getEffectiveLevel() > logging.WARNING:  # a quiet log level must not hide overflows
            self._log_level = watchdog_log.level
            watchdog_log.setLevel(logging.WARNING)
        # Started before scheduling: watchdog then adds each root's watches synchronously inside
        # schedule(), so a watch-limit error surfaces here, per root, instead of killing a thread later.
        native = Observer()
        native.start()
        self._observers.append(native)
        for root in self.roots:
            try:
                # The filter also sets the inotify mask: opens and no-write closes (a `pip install` or
                # `git checkout` storm) are then never queued to us, nor able to overflow the queue.
                native.schedule(self._handler, root, recursive=True, event_filter=_CONTENT_EVENTS)
                self._native_roots.append(root)
            except OSError as error:
                self._poll(root, f"native watching failed ({error.strerror or error})", also=False)
        self._check_watch_limit()
        self._on_health(SensorHealth(self.name, "running", f"watching {len(self.roots)} roots"))

    def stop(self) -> None:
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(timeout=10)
        self._observers.clear()
        self._native_roots.clear()
        self.polled_roots.clear()
        self._polling = None
        watchdog_log = logging.getLogger("watchdog.observers")
        watchdog_log.removeHandler(self._overflow)
        if self._log_level is not None:
            watchdog_log.setLevel(self._log_level)
            self._log_level = None

    def status(self) -> SensorStatus:
        polling = self._polling is not None
        return SensorStatus(self.name, "degraded" if polling else ("running" if self._observers else "stopped"),
                            "watchdog+polling" if polling else "watchdog", privilege(),
                            f"watching {len(self.roots)} roots")

    def _check_watch_limit(self) -> None:
        """Natively watched roots may have blind subdirectories once the watch limit is reached: poll them."""
        blind_risk = [root for root in self._native_roots if root not in self.polled_roots]
        if not blind_risk:
            return
        why = watch_limit_reached(blind_risk[0])
        if why is not None:
            for root in blind_risk:
                self._poll(root, f"{why}; some directories may not be watched", also=True)

    def _poll(self, root: str, why: str, *, also: bool) -> None:
        with self._lock:
            if root in self.polled_roots:
                return
            if self._polling is None:
                self._polling = PollingObserver(timeout=POLL_SECONDS)
                self._polling.start()
                self._observers.append(self._polling)
            self._polling.schedule(self._handler, root, recursive=True)
            self.polled_roots.append(root)
        self._on_health(SensorHealth(self.name, "degraded", f"{root}: {why}; polling every {POLL_SECONDS:g} s "
                                                            + ("as well" if also else "instead")))
