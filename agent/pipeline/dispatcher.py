"""The dispatcher: one thread takes the ordered queue's observations and handles each in turn.

Handlers are registered per observation type (typed hooks, as in mitmproxy's addons): a handler turns one
observation into the records it means, given the moment the observation was stamped. The dispatcher then
records each, in order: an Event is stored and passed through detection, whose alerts are stored after it;
an Alert is stored. So correlation and sequence rules see events in the order they happened, whichever
thread saw them, and the same stamped observations always give the same alerts.

The dispatcher is the one place where failures are caught: a handler, a detection, a timer, or work the
pipeline runs on other threads through `isolated` (examinations, scans) fails alone, is logged and counted
in `errors`, and the agent carries on (STYLE.md, habit 3).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from weightwarden.agent.events import Alert, Event, Record
from weightwarden.agent.pipeline.ordered_queue import ObservationQueue, Stamped
from weightwarden.agent.sensors.base import Counters, SensorStatus, privilege

log = logging.getLogger(__name__)

IDLE_SECONDS = 0.5  # the longest the loop sleeps: bounds how long a stop waits to be noticed

Obs = TypeVar("Obs")
Handler = Callable[[Any, datetime], Iterable[Record]]
Timer = Callable[[float], float | None]  # monotonic now -> seconds until it wants to run again (None: idle)


def moment_of(stamp: float) -> datetime:
    """A stamp (Unix seconds) as the record time we store: UTC, millisecond precision."""
    moment = datetime.fromtimestamp(stamp, UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class Dispatcher:
    name = "dispatcher"

    def __init__(self, queue: ObservationQueue, store: Callable[[Record], None],
                 detect: Callable[[Event], list[Alert]]) -> None:
        self.queue = queue
        self._store = store
        self._detect = detect
        self._handlers: dict[type, Handler] = {}
        self._timers: list[Timer] = []
        self.handled = 0  # observations handled (counted on the dispatcher's thread only)
        self._rate = Counters()  # for the status line's events/s
        self._errors_lock = threading.Lock()
        self.errors = 0
        self.thread: threading.Thread | None = None  # the thread that dispatches, once it runs

    def on(self, kind: type[Obs], handler: Callable[[Obs, datetime], Iterable[Record]]) -> None:
        """Register the handler of one observation type (exactly one per type)."""
        if kind in self._handlers:
            raise ValueError(f"{kind.__name__} already has a handler")
        self._handlers[kind] = handler

    def handles(self, kind: type) -> bool:
        return kind in self._handlers

    def every_turn(self, timer: Timer) -> None:
        """Run `timer` after each batch of observations (and at least every IDLE_SECONDS)."""
        self._timers.append(timer)

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event, on_turn: Callable[[float], None] = lambda now: None) -> None:
        """Dispatch until `stop` is set (what is still queued then is left for `drain`)."""
        self.thread = threading.current_thread()
        wait = 0.0
        while not stop.is_set():
            wait = self.turn(wait)
            on_turn(time.monotonic())

    def turn(self, wait: float) -> float:
        """Wait up to `wait` seconds for due observations, handle them, run the timers; the next wait."""
        for item in self.queue.take(wait):
            self.dispatch(item)
        return self._run_timers()

    def drain(self) -> int:
        """Handle everything queued so far, window or not, and run the timers once (shutdown, tests)."""
        items = self.queue.drain()
        for item in items:
            self.dispatch(item)
        self._run_timers()
        return len(items)

    def _run_timers(self) -> float:
        wait = IDLE_SECONDS
        now = time.monotonic()
        for timer in self._timers:
            due = self.isolated(timer, now)
            if due is not None:
                wait = min(wait, max(0.0, due))
        return wait

    # ------------------------------------------------------------------ handling

    def dispatch(self, item: Stamped) -> None:
        observation = item.observation
        handler = self._handlers.get(type(observation))
        if handler is None:
            self._failed(f"no handler for {type(observation).__name__} from {item.source}")
            return
        self.handled += 1
        try:
            records = list(handler(observation, moment_of(item.wall)))
        except Exception:
            self._failed(f"{getattr(handler, '__qualname__', handler)} failed on {item.source}'s "
                         f"{type(observation).__name__}", exc_info=True)
            return
        for record in records:
            self.record(record)

    def record(self, record: Record) -> None:
        """Store a record; an Event also goes through detection, and its alerts are stored after it."""
        if isinstance(record, Alert):
            log.warning("ALERT %s (severity %d): %s", record.rule_id, record.severity, record.message)
        self._store(record)
        if isinstance(record, Event):
            try:
                alerts = self._detect(record)
            except Exception:
                self._failed(f"detection failed on {record.action} {record.id}", exc_info=True)
                return
            for alert in alerts:
                self.record(alert)

    def isolated(self, work: Callable[..., Any], *args: Any) -> Any:
        """`work(*args)`, or None when it raised: the failure is logged and counted, never fatal."""
        try:
            return work(*args)
        except Exception:
            self._failed(f"{getattr(work, '__qualname__', work)} failed", exc_info=True)
            return None

    def _failed(self, message: str, exc_info: bool = False) -> None:
        with self._errors_lock:
            self.errors += 1
        log.error(message, exc_info=exc_info)

    def status(self) -> SensorStatus:
        """The pipeline's line in `weightwarden status`: observations handled, waiting, and failures (each
        failure lost that observation's records, so it counts as a drop)."""
        backlog = len(self.queue)
        return SensorStatus(self.name, "degraded" if self.errors else "running", "ordered queue", privilege(),
                            f"{self.errors} handler errors" if self.errors else "in order",
                            events=self.handled, events_per_second=self._events_per_second(),
                            drops=self.errors, backlog=backlog)

    def _events_per_second(self) -> float:
        self._rate.add(self.handled - self._rate.events)  # the counter's own total follows `handled`
        return self._rate.rate()
