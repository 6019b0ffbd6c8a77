"""All configured destinations at once: start, wake after new records, status, live changes, stop with a drain."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from weightwarden.agent.config import Config, ForwardDestination
from weightwarden.agent.events import Record
from weightwarden.agent.forward.forwarder import Forwarder
from weightwarden.agent.store.outbox import Outbox


class ForwardManager:
    def __init__(self, config: Config, emit: Callable[[Record], None]) -> None:
        self.database = config.database_path
        self.host = config.agent_name
        self.emit = emit
        self.destinations = config.forward  # every configured one, enabled or not: what sync-test may reach
        # Replaced as a whole (never mutated) so the writer's wake() can iterate without a lock.
        self.forwarders = [self._forwarder(d) for d in config.forward if d.enabled]
        self._changing = threading.Lock()
        self._started = False

    def _forwarder(self, destination: ForwardDestination) -> Forwarder:
        return Forwarder(destination, self.database, self.host, self.emit)

    def start(self) -> None:
        self._started = True
        for forwarder in self.forwarders:
            forwarder.start()

    def wake(self, _records: object = None) -> None:
        for forwarder in self.forwarders:
            forwarder.wake.set()

    def apply(self, destinations: Iterable[ForwardDestination]) -> dict[str, str]:
        """Make the running forwarders match `destinations` without a restart: an unchanged destination
        keeps its forwarder (its connection, its unconfirmed window); a changed one is stopped, then started
        with the new settings from its cursor; a removed or disabled one stops. Cursors live in the
        database, so none is lost or reset. Returns what happened per name."""
        wanted = list(destinations)
        with self._changing:
            current = {f.name: f for f in self.forwarders}
            changes: dict[str, str] = {}
            running: list[Forwarder] = []
            for destination in wanted:
                old = current.pop(destination.name, None)
                if old is not None and old.destination == destination:
                    running.append(old)
                    changes[destination.name] = "unchanged"
                    continue
                if old is not None:
                    old.stop()  # before its replacement starts: one sender per cursor
                if not destination.enabled:
                    changes[destination.name] = "stopped" if old is not None else "disabled"
                    continue
                forwarder = self._forwarder(destination)
                if self._started:
                    forwarder.start()
                running.append(forwarder)
                changes[destination.name] = "replaced" if old is not None else "started"
            for name, old in current.items():
                old.stop()
                changes[name] = "stopped"
            self.forwarders = running
            self.destinations = tuple(wanted)
        return changes

    def backlog(self, database: str) -> dict[str, int]:
        forwarders = self.forwarders
        if not forwarders:
            return {}
        outbox = Outbox(database)
        try:
            last = outbox.last_sequence()
            return {f.name: max(0, last - outbox.cursor(f.name)) for f in forwarders}
        finally:
            outbox.close()

    def stop(self, drain_seconds: float = 2.0) -> None:
        with self._changing:
            for forwarder in self.forwarders:
                forwarder.stop(drain_seconds)
