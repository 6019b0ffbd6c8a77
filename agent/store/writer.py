"""Batched writes: producers hand records over at once; one thread commits them in batches.

Batching turns a burst of hundreds of events into one transaction (one fsync in WAL mode) instead of
hundreds, and keeps SQLite latency off the sensors' threads and the dispatcher. Changes of the inventory's
model files go the same way, in the order they were handed over with the records: a copy alert that is
committed has its model file row committed before it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from weightwarden.agent.events import ModelFile, Record
from weightwarden.agent.sensors.base import Counters, SensorStatus, privilege
from weightwarden.agent.store.store import Store

log = logging.getLogger(__name__)

_FLUSH = object()


@dataclass(frozen=True, slots=True)
class _ModelFilesSeen:
    files: tuple[ModelFile, ...]
    seen: datetime


@dataclass(frozen=True, slots=True)
class _ModelFilesGone:
    paths: tuple[str, ...]


_Item = Record | _ModelFilesSeen | _ModelFilesGone


class RecordWriter:
    name = "store"

    def __init__(self, store: Store, *, batch_size: int = 256, flush_seconds: float = 0.5,
                 on_written: Callable[[list[Record]], None] | None = None) -> None:
        self._store = store
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._on_written = on_written
        self._queue: queue.Queue[object] = queue.Queue()
        self._failures = 0
        self.counters = Counters()  # records committed
        self._waiting = 0  # records submitted and not committed yet
        self._waiting_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ww-store-writer", daemon=True)
        self._thread.start()

    @property
    def failures(self) -> int:
        """Batches that could not be written (kept in memory and retried), for health reporting."""
        return self._failures

    def status(self) -> SensorStatus:
        """The store's line in `weightwarden status`, through the sensors' interface: records waiting to be
        committed (backlog), failed batches (drops, each kept and retried), degraded once one failed."""
        failures = self._failures
        state = "stopped" if self._closed else "degraded" if failures else "running"
        return SensorStatus(self.name, state, "sqlite", privilege(),
                            f"{failures} batches failed and were retried" if failures else "batched writes",
                            self.counters.events, self.counters.rate(), failures, self._waiting)

    def submit(self, record: Record) -> None:
        with self._waiting_lock:
            self._waiting += 1
        self._queue.put(record)

    def submit_model_files(self, files: Iterable[ModelFile], *, seen: datetime) -> None:
        """Model files found or changed (Store.upsert_model_files), committed in order with the records."""
        self._queue.put(_ModelFilesSeen(tuple(files), seen))

    def submit_model_files_gone(self, paths: Iterable[str]) -> None:
        """Model files no longer there (Store.mark_model_files_gone), committed in order with the records."""
        self._queue.put(_ModelFilesGone(tuple(paths)))

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything submitted so far is committed; False on timeout."""
        done = threading.Event()
        self._queue.put((_FLUSH, done))
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)
        self._closed = True

    def _run(self) -> None:
        pending: list[_Item] = []
        oldest = 0.0  # when the oldest pending record arrived: none waits longer than flush_seconds
        while True:
            # Nothing pending: sleep until something arrives (an idle agent does not wake this thread).
            wait = None if not pending else max(0.0, oldest + self._flush_seconds - time.monotonic())
            try:
                item = self._queue.get(timeout=wait) if wait is None or wait > 0 else _FLUSH
            except queue.Empty:
                item = _FLUSH
            if item is None:
                self._commit(pending)
                return
            if isinstance(item, tuple) and item[0] is _FLUSH:
                self._commit(pending)
                if not pending:
                    item[1].set()
                else:  # the commit failed: the flusher learns via timeout, records stay queued
                    self._queue.put(item)
                continue
            if item is _FLUSH:
                self._commit(pending)
                continue
            if not pending:
                oldest = time.monotonic()
            pending.append(item)  # type: ignore[arg-type]
            if len(pending) >= self._batch_size:
                self._commit(pending)

    def _commit(self, pending: list[_Item]) -> None:
        """Commit `pending` in order (runs of records in one transaction); what failed stays pending."""
        written: list[Record] = []
        done = 0
        try:
            while done < len(pending):
                item = pending[done]
                if isinstance(item, _ModelFilesSeen):
                    self._store.upsert_model_files(item.files, seen=item.seen)
                    done += 1
                elif isinstance(item, _ModelFilesGone):
                    self._store.mark_model_files_gone(item.paths)
                    done += 1
                else:
                    end = done
                    while end < len(pending) and not isinstance(pending[end], _ModelFilesSeen | _ModelFilesGone):
                        end += 1
                    written.extend(self._store.write(pending[done:end]))  # type: ignore[arg-type]
                    done = end
        except Exception:  # disk full, locked database...: keep the rest and try again next round
            self._failures += 1
            log.exception("could not write %d records; will retry", len(pending) - done)
            time.sleep(min(5.0, 0.05 * 2 ** min(self._failures, 7)))  # back off instead of spinning
        del pending[:done]
        if written:
            with self._waiting_lock:
                self._waiting -= len(written)
            self.counters.add(len(written))
        if written and self._on_written is not None:
            try:
                self._on_written(written)
            except Exception:
                log.exception("on_written callback failed")
