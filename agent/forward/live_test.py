"""One live test record to one destination, confirmed like real delivery: `sync test` and the app's button.

The record is built here and never stored: a test must not enter the chained log or move any cursor.
Syslog waits for its confirmation (TCP-acknowledged and held past the resend window); HEC, `_bulk` and
files confirm in the send itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from weightwarden.agent.config import ForwardDestination
from weightwarden.agent.events import Action, Category, Event
from weightwarden.agent.forward.destinations import build_transport
from weightwarden.agent.forward.syslog_transport import SyslogTransport
from weightwarden.agent.forward.transport import TransportError
from weightwarden.agent.store.outbox import OutboxRecord


@dataclass(frozen=True)
class LiveTestResult:
    ok: bool
    record_id: str
    milliseconds: int
    error: str = ""  # why it failed: the transport's error, or the destination's reason for refusing

    def as_reply(self) -> dict[str, object]:
        """The control socket's reply form."""
        if self.ok:
            return {"ok": True, "id": self.record_id, "milliseconds": self.milliseconds}
        return {"ok": False, "error": self.error, "id": self.record_id}


def send_test_record(destination: ForwardDestination, host: str, origin: str) -> LiveTestResult:
    """Send one forward-health test record (`origin` says who asked) and wait for its confirmation."""
    event = Event(Action.FORWARD_HEALTH, Category.HOST,
                  f"weightwarden test message for {destination.name} (from {origin})",
                  details={"destination": destination.name, "test": True})
    record = OutboxRecord(0, "event", event.id, event.to_dict())
    started = time.monotonic()

    def elapsed() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        transport = build_transport(destination, host)
        try:
            if isinstance(transport, SyslogTransport):
                outcome = transport.send_and_confirm([record], started + destination.timeout_seconds + 5)
            else:
                outcome = transport.send([record])
        finally:
            transport.close()
    except TransportError as error:
        return LiveTestResult(False, event.id, elapsed(), f"{destination.name}: {error}")
    if outcome.dead:
        return LiveTestResult(False, event.id, elapsed(), f"{destination.name} refused the test record: "
                                                      f"{outcome.dead[0][1]}")
    return LiveTestResult(True, event.id, elapsed())
