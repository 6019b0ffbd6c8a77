"""The delivery loop of one destination: read after the cursor, send, move the cursor on confirmation.

At-least-once: the cursor (in SQLite) moves only when the transport confirms, so after kill -9, a reboot
or an outage of hours the loop resumes from the last confirmed record. Failures back off exponentially
with jitter. The disk budget (`backlog_max_mb`) is enforced here: when the records waiting hold more
bytes than the budget allows, the oldest are skipped and an explicit `events-dropped` record says how many
and which, and is itself forwarded; nothing is ever lost silently.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable

from weightwarden.agent.config import ForwardDestination
from weightwarden.agent.events import Action, Category, Event, Record
from weightwarden.agent.forward.destinations import build_transport
from weightwarden.agent.forward.render import failure_reason
from weightwarden.agent.forward.text import well_formed
from weightwarden.agent.forward.transport import Outcome, Transport, TransportError, backoff_seconds
from weightwarden.agent.store.outbox import Outbox, OutboxRecord

log = logging.getLogger(__name__)

MIB = 1024 * 1024
READ_AHEAD_LIMIT = 20_000  # records sent but unconfirmed (syslog window) before we stop reading ahead
BUDGET_CHECK_SECONDS = 1.0
BUDGET_COUNT_CHUNK = 20_000  # records a first budget count adds per check (a long log never stalls delivery)
DEAD_LETTER_REPORT_SECONDS = 60.0  # at most one dead-letter health record per destination in this time


class Forwarder:
    def __init__(self, destination: ForwardDestination, database: str, host: str,
                 emit: Callable[[Record], None], *, idle_seconds: float = 0.2,
                 transport_factory: Callable[[ForwardDestination, str], Transport] = build_transport) -> None:
        self.destination = destination
        self.name = destination.name
        self.database = database
        self.host = host
        self.emit = emit
        self.idle_seconds = idle_seconds
        self.transport_factory = transport_factory
        self.wake = threading.Event()
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._drain_until: float | None = None
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._run, name=f"ww-forward-{self.name}", daemon=True)
        self._health_reported: str | None = None
        self._counted: tuple[int, int, int] | None = None  # the disk budget's running count, see _enforce_budget
        self._dead_reported_at: float | None = None
        self._dead_unreported = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop; with `drain_seconds`, first keep delivering until caught up or that time has passed."""
        if self._thread.ident is None:
            return  # never started
        self._drain_until = time.monotonic() + drain_seconds
        self.wake.set()
        if drain_seconds <= 0:
            self._stop.set()
        self._thread.join(timeout=drain_seconds + 30)
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        outbox = Outbox(self.database)
        transport: Transport | None = None
        try:
            started = False
            sent = 0
            attempt = 0
            last_budget_check = 0.0
            isolate_through = 0  # after an unexpected failure: one record at a time up to this sequence
            while not self._stop.is_set():
                if self._drain_until is not None and time.monotonic() > self._drain_until:
                    break  # shutting down and the drain time is spent (a failing destination stays queued)
                try:
                    if not started:
                        sent = outbox.ensure(self.name, start=self.destination.start)
                        started = True
                    if time.monotonic() - last_budget_check > BUDGET_CHECK_SECONDS:
                        self._enforce_budget(outbox)
                        last_budget_check = time.monotonic()
                        sent = max(sent, outbox.cursor(self.name))
                    batch: list[OutboxRecord] = []
                    alone = False  # the batch is one record sent with nothing unconfirmed before it
                    try:
                        if transport is None:
                            transport = self.transport_factory(self.destination, self.host)
                        waiting = transport.unconfirmed()
                        isolating = sent < isolate_through
                        if waiting < READ_AHEAD_LIMIT and not (isolating and waiting):
                            batch = outbox.after(sent, 1 if isolating else self.destination.batch_size)
                        alone = len(batch) == 1 and waiting == 0
                        outcome = transport.send(batch) if batch else transport.poll()
                    except TransportError as error:
                        self._failed(outbox, error)
                        if transport is not None:
                            transport.reset()
                        sent = outbox.cursor(self.name)
                        self._sleep(self._backoff(attempt))
                        attempt += 1
                        continue
                    except Exception as error:  # not a transport failure: a record it cannot take, or a bug
                        transport = self._reset_after(transport)
                        if alone:  # the record is the culprit: it goes to the dead letters, delivery goes on
                            self._record(outbox, Outcome(confirmed=batch[0].sequence,
                                                         dead=[(batch[0], failure_reason("cannot send", error))]))
                            sent = batch[0].sequence
                            continue
                        log.exception("forward %s: unexpected failure; retrying one record at a time", self.name)
                        sent = outbox.cursor(self.name)
                        if batch:
                            isolate_through = max(isolate_through, batch[-1].sequence)
                        else:
                            self._failed(outbox, TransportError(failure_reason("unexpected failure", error)))
                            self._sleep(self._backoff(attempt))
                            attempt += 1
                        continue
                    self._record(outbox, outcome)
                    if attempt or self._health_reported:
                        self._recovered()
                    attempt = 0
                    if batch:
                        sent = batch[-1].sequence
                    elif self._draining_done(outbox, transport):
                        break
                    else:
                        self._sleep(self.idle_seconds)
                except Exception as error:  # the outbox or the agent failed us (database locked, disk full...)
                    # Nothing is lost: the cursor moved only on confirmation; start again from it, later.
                    log.exception("forward %s: unexpected failure; retrying from the cursor", self.name)
                    self.errors += 1
                    self.last_error = failure_reason("unexpected failure", error)
                    transport = self._reset_after(transport)
                    with contextlib.suppress(Exception):
                        sent = outbox.cursor(self.name) if started else 0
                    self._sleep(self._backoff(attempt))
                    attempt += 1
        except Exception:  # one failing destination never stops the agent (STYLE.md habit 3)
            log.exception("forwarder %s stopped by an unexpected error", self.name)
        finally:
            if transport is not None:
                transport.close()
            outbox.close()

    def _backoff(self, attempt: int) -> float:
        return backoff_seconds(attempt, self.destination.retry_initial_seconds, self.destination.retry_max_seconds,
                               self._rng)

    def _reset_after(self, transport: Transport | None) -> Transport | None:
        """Drop the connection after an unexpected failure (whatever was unconfirmed is resent from the cursor);
        a transport that cannot even reset is rebuilt."""
        if transport is None:
            return None
        try:
            transport.reset()
        except Exception:
            log.exception("forward %s: the transport could not reset; building a new one", self.name)
            with contextlib.suppress(Exception):
                transport.close()
            return None
        return transport

    def _draining_done(self, outbox: Outbox, transport: Transport) -> bool:
        if self._drain_until is None:
            return False
        caught_up = transport.unconfirmed() == 0 and outbox.cursor(self.name) >= outbox.last_sequence()
        return caught_up or time.monotonic() > self._drain_until

    def _record(self, outbox: Outbox, outcome: Outcome) -> None:
        for record, reason in outcome.dead:
            reason = well_formed(reason)
            log.warning("%s refused record %s: %s (dead-lettered)", self.name, record.id, reason)
            try:
                outbox.dead_letter(self.name, record, reason)
            except (ValueError, TypeError, RecursionError) as error:  # a record too odd to write out as JSON again
                kept = {"not_kept": failure_reason("the record could not be kept", error)}
                outbox.dead_letter(self.name, OutboxRecord(record.sequence, record.kind, record.id, kept), reason)
            self._dead_lettered(record, reason)
        if outcome.confirmed:
            outbox.advance(self.name, outcome.confirmed, outcome.delivered)

    def _dead_lettered(self, record: OutboxRecord, reason: str) -> None:
        """A health record for a dead letter, at most one per DEAD_LETTER_REPORT_SECONDS per destination (so a
        flood of bad records, or a health record that itself cannot be delivered, never feeds on itself); the
        next one counts those not reported singly."""
        self._dead_unreported += 1
        now = time.monotonic()
        if self._dead_reported_at is not None and now - self._dead_reported_at < DEAD_LETTER_REPORT_SECONDS:
            return
        count, self._dead_unreported, self._dead_reported_at = self._dead_unreported, 0, now
        more = f" ({count - 1} more since the last report)" if count > 1 else ""
        self.emit(Event(Action.FORWARD_HEALTH, Category.HOST,
                        f"forwarding to {self.name}: record {record.id} (sequence {record.sequence}) was kept as a "
                        f"dead letter and not delivered: {reason}{more}",
                        severity=5, details={"destination": self.name, "status": "dead-letter",
                                             "record_id": record.id, "sequence": record.sequence,
                                             "reason": reason, "dead_letters": count}))

    def _failed(self, outbox: Outbox, error: TransportError) -> None:
        self.errors += 1
        self.last_error = str(error)
        log.info("forward %s: %s", self.name, error)
        try:
            outbox.note_error(self.name, str(error))
        except Exception:
            log.exception("could not note the error of %s", self.name)
        if error.config and self._health_reported != str(error):
            self._health_reported = str(error)
            self.emit(Event(Action.FORWARD_HEALTH, Category.HOST,
                            f"forwarding to {self.name} needs attention: {error}; records are kept and retried",
                            severity=5, details={"destination": self.name, "status": "failing",
                                                 "error": str(error)}))

    def _recovered(self) -> None:
        if self._health_reported:
            self._health_reported = None
            self.emit(Event(Action.FORWARD_HEALTH, Category.HOST, f"forwarding to {self.name} works again",
                            details={"destination": self.name, "status": "running"}))

    def _enforce_budget(self, outbox: Outbox) -> None:
        """Keep the backlog's bytes within `backlog_max_mb`.

        A running count (cursor, through, bytes) follows what arrived and what was delivered since the last
        check, so a check costs the change, not the backlog; it is saved with the cursor, so a restart does
        not recount either. A first count (a new destination on a long log) advances BUDGET_COUNT_CHUNK
        records per check: a partial count is a lower bound, enough to act on once it exceeds the budget.
        """
        last = outbox.last_sequence()
        cursor = outbox.cursor(self.name)
        counted = self._counted or outbox.budget_count(self.name)
        if counted is None or not counted[0] <= cursor < counted[1]:
            counted = (cursor, cursor, 0)  # nothing counted that is still waiting: start at the cursor
        counted_cursor, counted_through, size = counted
        through = min(last, counted_through + BUDGET_COUNT_CHUNK)
        size += outbox.record_bytes(counted_through, through) - outbox.record_bytes(counted_cursor, cursor)
        budget = int(self.destination.backlog_max_mb * MIB)
        if size > budget:
            cut, freed = outbox.budget_cut(cursor, size - budget)
            first, to = outbox.skip(self.name, cut)
            cursor, size = max(cursor, to), size - freed
            self._dropped(first, to, freed)
        if (cursor, through, size) != self._counted:
            self._counted = (cursor, through, size)
            outbox.save_budget_count(self.name, self._counted)

    def _dropped(self, first: int, to: int, freed: int) -> None:
        dropped = to - first + 1
        if dropped <= 0:
            return
        budget = self.destination.backlog_max_mb
        log.warning("forward %s: backlog over budget, %d records dropped (%d..%d)", self.name, dropped, first, to)
        self.emit(Event(Action.EVENTS_DROPPED, Category.HOST,
                        f"{dropped} events dropped for {self.name}: its backlog exceeded the budget of {budget:g} MiB "
                        f"(records {first}..{to} stay in the local log)",
                        severity=6, details={"destination": self.name, "dropped": dropped, "first_sequence": first,
                                             "last_sequence": to, "bytes_dropped": freed,
                                             "backlog_max_mb": budget}))

    def _sleep(self, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()
