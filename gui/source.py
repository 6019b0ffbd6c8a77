"""The app's connection to the local store (read-only) and to the agent's control socket.

Polls SQLite's data_version (a pragma that changes whenever another connection commits) every half
second: new alerts show up without a restart and without reloading anything that did not change.
A missing or older database is a state to show, not a crash; the source keeps retrying to open it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from weightwarden.agent import control
from weightwarden.agent.detect.rules import RuleSet
from weightwarden.agent.store import Store, StoreError
from weightwarden.agent.store.review_queries import AlertReview
from weightwarden.gui.rule_catalog import rules_in_effect


@dataclass(frozen=True)
class AgentStatus:
    reachable: bool
    admin: bool = False
    user: str = ""
    info: dict[str, Any] | None = None
    error: str = ""


class DataSource(QObject):
    changed = Signal()  # the database has new commits
    opened = Signal()  # the database became readable (first time, or after an error)
    agentChanged = Signal(object)  # AgentStatus

    def __init__(self, database_path: str, control_path: str | None = None, *, poll_ms: int = 500,
                 agent_poll_s: float = 5.0, rules: RuleSet | None = None) -> None:
        super().__init__()
        self.database_path = database_path
        self.rules = rules if rules is not None else rules_in_effect()  # what the report says about a rule
        self.control_path = control_path or control.socket_path(os.path.dirname(os.path.abspath(database_path)))
        self.store: Store | None = None
        self.error = ""
        self.denied = False  # the database exists but this user may not read it (system mode, not an admin)
        self.agent = AgentStatus(False, error="not checked yet")
        self._version = -1
        self._agent_poll_s = agent_poll_s
        self._last_agent_poll = float("-inf")
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.poll)
        self._open()
        self.check_agent()

    @property
    def review(self) -> AlertReview | None:
        return self.store.review if self.store is not None else None

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        if self.store is not None:
            self.store.close()
            self.store = None

    def _open(self) -> bool:
        try:
            self.store = Store(self.database_path, read_only=True)
        except (StoreError, OSError) as error:  # OSError: e.g. a data dir only admins may enter
            self.error = str(error) if isinstance(error, StoreError) else \
                f"{self.database_path}: {error.strerror or error}"
            self.denied = _denied(self.database_path)
            return False
        self.error = ""
        self.denied = False
        self._version = self.store.review.data_version()
        return True

    def poll(self) -> None:
        """One tick: open the database if it was not readable, notice commits, re-check the agent."""
        if self.store is None:
            if self._open():
                self.opened.emit()
        elif (version := self._data_version()) != self._version:
            self._version = version
            self.changed.emit()
        if time.monotonic() - self._last_agent_poll >= self._agent_poll_s:
            self.check_agent()

    def _data_version(self) -> int:
        assert self.store is not None
        try:
            return self.store.review.data_version()
        except Exception as error:  # the file was replaced or removed under us: reopen on the next tick
            self.error = f"{self.database_path}: {error}"
            self.store.close()
            self.store = None
            return self._version

    def check_agent(self) -> AgentStatus:
        self._last_agent_poll = time.monotonic()
        try:
            reply = control.request(self.control_path, {"op": "ping"}, timeout=1.0)
        except control.ControlError as error:
            status = AgentStatus(False, error=str(error))
        else:
            peer = reply.get("peer") or {}
            status = AgentStatus(bool(reply.get("ok")), admin=bool(peer.get("admin")), user=str(peer.get("user", "")),
                                 info=reply.get("agent"), error=str(reply.get("error", "")))
        if status != self.agent:
            self.agent = status
            self.agentChanged.emit(status)
        return status

    def act(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Ask the agent to do something; the reply says ok or why not (never raises)."""
        try:
            reply = control.request(self.control_path, payload, timeout=5.0)
        except control.ControlError as error:
            self.check_agent()
            return {"ok": False, "error": str(error)}
        self.poll()  # the agent committed: show it now rather than at the next tick
        return reply


def _denied(path: str) -> bool:
    """True when the database (or the directory holding it) exists but is closed to this user."""
    try:
        os.stat(path)
    except PermissionError:
        return True
    except OSError:
        return False
    return not os.access(path, os.R_OK)
