"""File sensor: watchdog on the watched roots, translated into FileObservation values. It decides nothing.

Opens and no-write closes are ignored here (access is the access sensor's job), which also keeps the
agent's own reads while hashing from echoing back as activity. When a root cannot be watched natively
(inotify watch limit) the sensor falls back to polling for that root and says so through `on_health`.
"""

from __future__ import annotations

import logging
import os
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

log = logging.getLogger(__name__)

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


class _Handler(FileSystemEventHandler):
    def __init__(self, sink: Callable[[FileObservation], None]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = _KINDS.get(event.event_type)
        if kind is None:
            return
        if event.is_directory and kind in ("modified", "closed"):
            return  # a directory's mtime changes with every entry; the entry's own event tells us more
        dest = os.fsdecode(event.dest_path) if event.dest_path else None
        self._sink(FileObservation(kind, os.fsdecode(event.src_path), dest, event.is_directory))


class _OverflowWatcher(logging.Handler):
    """watchdog reports an inotify queue overflow only through its logger; make it an observation."""

    def __init__(self, sink: Callable[[FileObservation], None]) -> None:
        super().__init__(logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
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

    def start(self) -> None:
        logging.getLogger("watchdog.observers").addHandler(self._overflow)
        handler = _Handler(self._sink)
        # Started before scheduling: watchdog then adds each root's watches synchronously inside
        # schedule(), so a watch-limit error surfaces here, per root, instead of killing a thread later.
        native = Observer()
        native.start()
        self._observers.append(native)
        polling: BaseObserver | None = None
        for root in self.roots:
            try:
                # The filter also sets the inotify mask: opens and no-write closes (a `pip install` or
                # `git checkout` storm) are then never queued to us, nor able to overflow the queue.
                native.schedule(handler, root, recursive=True, event_filter=_CONTENT_EVENTS)
            except OSError as error:
                if polling is None:
                    polling = PollingObserver(timeout=2.0)
                    polling.start()
                    self._observers.append(polling)
                polling.schedule(handler, root, recursive=True)
                self._on_health(SensorHealth(self.name, "degraded",
                                             f"{root}: native watching failed ({error.strerror or error}); "
                                             "polling every 2 s instead"))
        self._on_health(SensorHealth(self.name, "running", f"watching {len(self.roots)} roots"))

    def stop(self) -> None:
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(timeout=10)
        self._observers.clear()
        logging.getLogger("watchdog.observers").removeHandler(self._overflow)
