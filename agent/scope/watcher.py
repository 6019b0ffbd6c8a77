"""Accounts and folders that appear or go while the agent runs: the scope, looked at again every few seconds.

A poll, not inotify on /etc: the scope depends on more than /etc/passwd (login.defs, shells, the
environment files, and above all whether each person's usual folders exist: a first `hf download` makes
~/.cache/huggingface), homes may be on network filesystems where inotify sees nothing, and useradd
replaces /etc/passwd by renaming, so a watch on the file itself would be lost. One look costs a read of
the account files plus a stat of a dozen paths per person (measured: docs/design.md, "Choices").

The watcher only observes: each scope that differs from the last one is put on the ordered queue as a
`ScopeChanged`; the dispatcher's handler (agent/service.py) decides what to scan and records the event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from weightwarden.agent.config import Config
from weightwarden.agent.scope.scope import Scope, compute_scope
from weightwarden.agent.sensors.base import SensorStatus, privilege

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScopeChanged:
    """The scope now differs from the one last reported (or the one the agent started with)."""

    scope: Scope


class ScopeWatcher:
    name = "scope"

    def __init__(self, config: Config, emit: Callable[[object], None], *,
                 compute: Callable[[Config], Scope] = compute_scope) -> None:
        self.config = config
        self._emit = emit
        self._compute = compute
        self.initial = compute(config)  # the scope the agent starts with
        self._last = self.initial
        self._looks = 0
        self._changes = 0
        self._last_look_seconds = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ww-scope", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def look(self) -> Scope:
        """Compute the scope now; report it when it changed. The watcher's thread calls it (tests may)."""
        started = time.monotonic()
        scope = self._compute(self.config)
        self._looks += 1
        self._last_look_seconds = time.monotonic() - started
        if scope != self._last:
            self._last = scope
            self._changes += 1
            self._emit(ScopeChanged(scope))
        return scope

    def _run(self) -> None:
        while not self._stop.wait(self.config.inventory.scope_seconds):
            try:
                self.look()
            except Exception:  # a bad look never ends the watching
                log.exception("looking at the scope failed")

    def status(self) -> SensorStatus:
        scope = self._last
        running = self._thread is not None and self._thread.is_alive()
        return SensorStatus(
            self.name, "running" if running else "stopped", "poll", privilege(),
            message=f"{len(scope.users)} users covered, {len(scope.protected_roots)} protected roots; "
                    f"last look {self._last_look_seconds * 1000:.0f} ms",
            events=self._changes)
