"""User-mode access sensor: who holds a protected model open, without fanotify.

inotify (through watchdog) tells us a protected file was opened, but not by whom; a scan of /proc/*/fd
and /proc/*/maps right after names the processes still holding it. Where no open notification exists
(macOS FSEvents) every process's open files are swept every `sweep_seconds` instead (psutil). Readers
that finish before the scan are missed: that is the "reduced coverage" the status reports. Our own reads
are never reported (our pid is excluded from the scan).
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable

from watchdog.events import (
    FileClosedNoWriteEvent,
    FileModifiedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from weightwarden.agent.processes import ProcessCache, fd_positions, holders, maps_file, open_holders
from weightwarden.agent.sensors.access import AccessObservation
from weightwarden.agent.sensors.base import Counters, SensorStatus, SensorThread, privilege
from weightwarden.agent.sensors.files import SensorHealth

log = logging.getLogger(__name__)

REPORT_EVERY_SECONDS = 5.0  # one report per (process, file) in this window
SWEEP_SECONDS = 2.0


class HolderSensor:
    name = "access"

    def __init__(self, cache: ProcessCache, sink: Callable[[AccessObservation], None],
                 on_health: Callable[[SensorHealth], None], reason: str, *,
                 sweep_seconds: float | None = None if sys.platform.startswith("linux") else SWEEP_SECONDS) -> None:
        self.cache = cache
        self.sweep_seconds = sweep_seconds
        self._sweeper = SensorThread("ww-holders-sweep", self._sweep_loop)
        self._scan_lock = threading.Lock()  # the open-event worker and the sweeper share what was reported
        self._sink = sink
        self._on_health = on_health
        self.reason = reason
        self.counters = Counters()
        self._protected: set[str] = set()
        self._roots: set[str] = set()
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=10000)
        self._observer: BaseObserver | None = None
        self._worker: threading.Thread | None = None
        self._reported: dict[tuple[int, str], float] = {}
        self._state = "stopped"

    def start(self) -> None:
        self._observer = Observer()
        self._observer.start()
        self._worker = threading.Thread(target=self._work, name="ww-holders", daemon=True)
        self._worker.start()
        if self.sweep_seconds is not None:
            self._sweeper.start()
        self._state = "degraded"
        self._on_health(SensorHealth(self.name, "degraded", f"reduced coverage: {self.reason}"))

    def stop(self) -> None:
        self._sweeper.stop()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=5)
            self._worker = None
        self._state = "stopped"

    def status(self) -> SensorStatus:
        return SensorStatus(self.name, self._state, "inotify+proc-fd-scan", privilege(),
                            f"{len(self._protected)} files watched for opens; reduced coverage: {self.reason}",
                            self.counters.events, self.counters.rate(),
                            self.counters.drops, self._queue.qsize())

    def protect(self, paths: Iterable[str]) -> None:
        self._protected = set(paths)
        roots = {os.path.dirname(p) for p in self._protected}
        if self._observer is None:
            return
        handler = _OpenHandler(self)
        for root in sorted(roots - self._roots):
            try:
                self._observer.schedule(handler, root, recursive=False,
                                        event_filter=[FileOpenedEvent, FileClosedNoWriteEvent, FileModifiedEvent])
                self._roots.add(root)
            except OSError as error:  # e.g. the inotify watch limit: opens there go unseen, say so
                self.counters.drop()
                self._on_health(SensorHealth(self.name, "degraded",
                                             f"cannot watch {root} for opens ({error.strerror or error}): "
                                             "readers of the models there are not named"))

    def _opened(self, path: str) -> None:
        if path in self._protected:
            try:
                self._queue.put_nowait(path)
            except queue.Full:
                self.counters.drop()

    def _work(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                self._scan(path)
            except Exception:
                log.exception("holder scan failed for %s", path)

    def _sweep_loop(self) -> None:
        assert self.sweep_seconds is not None
        while not self._sweeper.stopping.wait(self.sweep_seconds):
            try:
                for path, pids in open_holders(self._protected).items():
                    self._scan(path, pids)
            except Exception:
                log.exception("open-files sweep failed")

    def _scan(self, path: str, pids: list[int] | None = None) -> None:
        with self._scan_lock:
            self._scan_locked(path, pids)

    def _scan_locked(self, path: str, pids: list[int] | None) -> None:
        now = time.monotonic()
        try:
            st = os.stat(path)
        except OSError:
            return
        for pid in pids if pids is not None else holders(path):
            if now - self._reported.get((pid, path), -1e9) < REPORT_EVERY_SECONDS:
                continue
            self._reported[(pid, path)] = now
            positions = fd_positions(pid, st.st_dev, st.st_ino)
            process = self.cache.process_info(pid)
            self.counters.add()
            self._sink(AccessObservation(
                "held", path, st.st_dev, st.st_ino, st.st_size, process,
                bytes_read=max((p for _, p in positions), default=None),
                bytes_read_source="fd-position" if positions else None,
                mapped=maps_file(pid, st.st_dev, st.st_ino), seen_monotonic=now))
        if len(self._reported) > 10000:
            self._reported = {k: t for k, t in self._reported.items() if now - t < REPORT_EVERY_SECONDS}


class _OpenHandler(FileSystemEventHandler):
    def __init__(self, sensor: HolderSensor) -> None:
        self._sensor = sensor

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write", "modified") and not event.is_directory:
            self._sensor._opened(os.fsdecode(event.src_path))
