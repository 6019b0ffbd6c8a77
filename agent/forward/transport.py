"""What every transport offers the delivery loop, and the backoff they share."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from weightwarden.agent.store.outbox import OutboxRecord


class TransportError(Exception):
    """One attempt failed. `config` marks failures a person must fix (401/403, bad certificate): the
    records stay queued either way, but those also raise a forward-health record."""

    def __init__(self, message: str, *, config: bool = False) -> None:
        super().__init__(message)
        self.config = config


@dataclass
class Outcome:
    """What an attempt achieved: delivery confirmed up to `confirmed` (a sequence; 0 = nothing new), and
    records the destination refused as malformed, which go to the dead-letter table and are not retried."""

    confirmed: int = 0
    delivered: int = 0
    dead: list[tuple[OutboxRecord, str]] = field(default_factory=list)


class Transport(Protocol):
    def send(self, records: list[OutboxRecord]) -> Outcome:
        """Send a batch (in sequence order); may confirm less than it sent (syslog's resend window)."""

    def poll(self) -> Outcome:
        """Nothing new to send: report confirmations that became due."""

    def unconfirmed(self) -> int:
        """Records sent but not yet confirmed (the loop stops reading ahead past a limit)."""

    def reset(self) -> None:
        """Drop the connection and forget everything unconfirmed (it is resent from the cursor)."""

    def close(self) -> None:
        """Close cleanly (TLS close_notify, file closed)."""


def backoff_seconds(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: a random delay in [½, 1] × min(maximum, initial × 2^attempt).

    The jitter keeps a fleet of agents from reconnecting in lockstep after a receiver outage; the floor
    of one half keeps the growth real.
    """
    ceiling = min(maximum, initial * (2 ** min(attempt, 60)))
    return float(ceiling * (rng or random).uniform(0.5, 1.0))
