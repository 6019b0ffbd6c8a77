"""All configured destinations at once: start, wake after new records, status, stop with a drain."""

from __future__ import annotations

from collections.abc import Callable

from weightwarden.agent.config import Config
from weightwarden.agent.events import Record
from weightwarden.agent.forward.forwarder import Forwarder
from weightwarden.agent.store.outbox import Outbox


class ForwardManager:
    def __init__(self, config: Config, emit: Callable[[Record], None]) -> None:
        self.forwarders = [Forwarder(destination, config.database_path, config.agent_name, emit)
                           for destination in config.forward if destination.enabled]

    def start(self) -> None:
        for forwarder in self.forwarders:
            forwarder.start()

    def wake(self, _records: object = None) -> None:
        for forwarder in self.forwarders:
            forwarder.wake.set()

    def backlog(self, database: str) -> dict[str, int]:
        if not self.forwarders:
            return {}
        outbox = Outbox(database)
        try:
            last = outbox.last_sequence()
            return {f.name: max(0, last - outbox.cursor(f.name)) for f in self.forwarders}
        finally:
            outbox.close()

    def stop(self, drain_seconds: float = 2.0) -> None:
        for forwarder in self.forwarders:
            forwarder.stop(drain_seconds)
