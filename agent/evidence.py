"""Evidence that holds: signed chain checkpoints, heartbeats, and the forwarders, for the running agent.

One thread, woken once a second: a checkpoint signs the chain head every `[store] checkpoint_seconds`
(and once more at shutdown, after `agent-stopped`); a heartbeat every `[agent] heartbeat_seconds`
carries coverage, sensor health and each destination's backlog, so a stopped or degraded agent shows
up centrally as a gap or a change in heartbeats. Both are ordinary records: chained and forwarded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from weightwarden.agent.config import Config
from weightwarden.agent.events import Action, Category, Event, Record
from weightwarden.agent.forward.manager import ForwardManager
from weightwarden.agent.keys import AgentKey, AgentKeyError
from weightwarden.agent.store import RecordWriter, Store
from weightwarden.agent.store.chain import checkpoint_message

log = logging.getLogger(__name__)


class Evidence:
    def __init__(self, config: Config, store: Store, writer: RecordWriter, record: Callable[[Record], None],
                 status: Callable[[], dict[str, Any]]) -> None:
        self.config = config
        self.store = store
        self.writer = writer
        self.record = record
        self.status = status
        self.key: AgentKey | None
        try:
            self.key = AgentKey.load_or_create(config.data_dir)
        except (AgentKeyError, OSError) as error:
            log.error("no agent key, checkpoints will not be signed: %s", error)
            self.key = None
        self.forwarders = ForwardManager(config, record)
        self._signed = 0
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="ww-evidence", daemon=True)

    def start(self) -> None:
        self.forwarders.start()
        self._thread.start()

    def written(self, records: list[Record]) -> None:
        """The writer committed records: wake the forwarders instead of letting them poll."""
        self.forwarders.wake(records)

    def final_signature(self) -> dict[str, Any]:
        """For the `agent-stopped` record: the signed head of everything committed before it.

        Riding on agent-stopped keeps that record the last one of a clean shutdown while still signing the
        whole log up to it (`store.chain` reads `details.checkpoint` of agent-stopped like a checkpoint).
        """
        self.stop_periodic()
        self.writer.flush(timeout=10)
        signed = self._sign("shutdown")
        return {"checkpoint": signed} if signed else {}

    def stop_periodic(self) -> None:
        """No more heartbeats or periodic checkpoints (shutdown: what they already recorded is kept)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def stop(self) -> None:
        """After `agent-stopped` was recorded: give the forwarders a moment to deliver it."""
        self.stop_periodic()
        self.writer.flush(timeout=10)
        self.forwarders.stop(drain_seconds=self.config.agent.forward_drain_seconds)

    def checkpoint(self, reason: str = "periodic") -> bool:
        """Sign the committed chain head as a checkpoint record; False when nothing new or no key."""
        sequence, _ = self.store.chain_head()
        if sequence <= self._signed + 1 and reason == "periodic":
            return False  # nothing but our own last checkpoint since then
        signed = self._sign(reason)
        if signed is None:
            return False
        self.record(Event(Action.CHAIN_CHECKPOINT, Category.HOST,
                          f"chain checkpoint ({reason}): record {signed['signed_sequence']} signed by agent key "
                          f"{signed['key_id']}", details=signed))
        return True

    def _sign(self, reason: str) -> dict[str, Any] | None:
        if self.key is None:
            return None
        sequence, chain_hash = self.store.chain_head()
        if sequence == 0:
            return None
        self._signed = sequence
        return {"signed_sequence": sequence, "signed_hash": chain_hash, "key_id": self.key.id,
                "algorithm": "ed25519", "reason": reason,
                "signature": self.key.sign(checkpoint_message(sequence, chain_hash, self.key.id))}

    def heartbeat(self) -> None:
        backlog = self.forwarders.backlog(self.config.database_path)
        details = {**self.status(), "backlog": backlog, "last_sequence": self.store.last_sequence(),
                   "uptime_seconds": round(time.monotonic() - self._started, 1),
                   "forward_errors": {f.name: f.last_error for f in self.forwarders.forwarders if f.last_error}}
        coverage = details.get("coverage", "unknown")
        self.record(Event(Action.HEARTBEAT, Category.HOST,
                          f"heartbeat: {coverage} coverage, backlog {sum(backlog.values())}",
                          details=details))

    def _run(self) -> None:
        next_heartbeat = time.monotonic() + self.config.agent.heartbeat_seconds
        next_checkpoint = time.monotonic() + self.config.agent.checkpoint_seconds
        while not self._stop.wait(min(1.0, self.config.agent.heartbeat_seconds)):
            now = time.monotonic()
            try:
                if now >= next_heartbeat:
                    next_heartbeat = now + self.config.agent.heartbeat_seconds
                    self.heartbeat()
                if now >= next_checkpoint:
                    next_checkpoint = now + self.config.agent.checkpoint_seconds
                    self.checkpoint()
            except Exception:  # evidence keeping must never take the agent down
                log.exception("heartbeat or checkpoint failed")
