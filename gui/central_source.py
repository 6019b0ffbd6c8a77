"""The fleet view's source: the central index (gui/central.py) behind the interface the views share with
DataSource (gui/source.py).

Read-only: there is no local store, no review and no agent to act through (a status change or a
justification goes to the host's own agent). Queries run in two worker threads, each with its own
connection: one for the list and the detail (what a person waits for), one for aggregations (lists of
hosts and rules, the overview), so a slow aggregation never holds up a page. Answers come back to the UI
thread through a queued signal, so the window never waits on the network. A query's answer
carries the generation it was asked in: an answer to a question nobody asks any more (the filter changed
meanwhile) is dropped by the caller.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from weightwarden.agent.config import Config
from weightwarden.agent.detect.rules import RuleSet
from weightwarden.gui.central import CentralError, CentralStore
from weightwarden.gui.rule_catalog import rules_in_effect
from weightwarden.gui.source import AgentStatus

T = TypeVar("T")
READ_ONLY = ("The fleet view is read-only: acknowledge, resolve or justify an alert in the app of the host "
             "it came from (its agent records the review).")


class CentralSource(QObject):
    """What the views read in the fleet view. `review` and `store` are None (no local database)."""

    changed = Signal()
    opened = Signal()
    agentChanged = Signal(object)
    stateChanged = Signal()  # error set or cleared
    _answered = Signal(object, object)  # (callback, argument): run in the UI thread

    fleet = True
    review = None
    store = None
    denied = False

    def __init__(self, url: str, *, index: str = "", rules: RuleSet | None = None, page_size: int = 200,
                 **client: Any) -> None:
        """`client`: CentralStore's connection settings (credentials, TLS files, server_name, timeout)."""
        super().__init__()
        self.page_size = page_size  # alerts per request of the list
        self.database_path = url  # what the status bar names
        self.url = url
        self.rules = rules if rules is not None else rules_in_effect()
        self.agent = AgentStatus(False, error=READ_ONLY)
        self.error = ""
        self.error_kind = ""
        self.pending = 0  # queries asked and not answered yet (tests wait on it)
        self._stopped = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-view-list")
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-view-counts")
        self._answered.connect(self._deliver)
        self.central: CentralStore | None = None
        self._counts: CentralStore | None = None
        try:
            self.central = CentralStore(url, index=index, **client)
            self._counts = CentralStore(url, index=index, **client)
        except CentralError as error:
            self._set_error(error)

    # ------------------------------------------------------------------ the DataSource interface

    def start(self) -> None:
        """Nothing to poll: the fleet view asks when it is shown or its filter changes."""

    def stop(self) -> None:
        self._stopped = True  # answers still queued for the UI thread are dropped; nothing new is asked
        for executor in (self._executor, self._background):
            executor.shutdown(wait=True, cancel_futures=True)
        for central in (self.central, self._counts):
            if central is not None:
                central.close()

    def requests(self) -> list[dict[str, Any]]:
        """The search bodies sent on both connections (tests, bench)."""
        return [*(self.central.requests if self.central else []), *(self._counts.requests if self._counts else [])]

    def poll(self) -> None:
        """The views reload on demand; a poll re-asks nothing."""

    def check_agent(self) -> AgentStatus:
        return self.agent

    def act(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"ok": False, "error": READ_ONLY}

    # ------------------------------------------------------------------ queries

    def ask(self, query: Callable[[CentralStore], T], done: Callable[[T], None],
            failed: Callable[[CentralError], None] | None = None, *, background: bool = False) -> None:
        """Run `query` in a worker thread (`background`: the aggregations' one); `done(answer)` (or
        `failed(error)`) later, in the UI thread."""
        if self._stopped:
            return
        central = self._counts if background else self.central
        if central is None:  # the settings cannot make a client: told like any answer, after this call returns
            if failed is not None:
                error = CentralError(self.error_kind or "failed", self.error)
                QTimer.singleShot(0, self, lambda: failed(error))
            return
        self.pending += 1

        def run() -> tuple[bool, Any]:
            try:
                return True, query(central)
            except CentralError as error:
                return False, error
            except Exception as error:  # a malformed answer: said in the view, never a crash of the worker
                return False, CentralError("failed", f"{type(error).__name__}: {error}")

        future = (self._background if background else self._executor).submit(run)
        future.add_done_callback(lambda f: self._answered.emit(self._finish(done, failed), f))

    def _finish(self, done: Callable[[Any], None],
                failed: Callable[[CentralError], None] | None) -> Callable[[Future[tuple[bool, Any]]], None]:
        def finish(future: Future[tuple[bool, Any]]) -> None:
            self.pending -= 1
            if future.cancelled() or self._stopped:
                return
            ok, value = future.result()
            if ok:
                if self.error:
                    self._set_error(None)
                done(value)
            else:
                self._set_error(value)
                if failed is not None:
                    failed(value)
        return finish

    @Slot(object, object)
    def _deliver(self, callback: Callable[[Any], None], argument: Any) -> None:
        callback(argument)

    @classmethod
    def from_config(cls, config: Config, url: str, index: str | None = None) -> CentralSource:
        """The fleet view's source with the [gui] section's index, TLS files and user (the password from
        WEIGHTWARDEN_CENTRAL_PASSWORD: never in a config file)."""
        gui = config.gui
        return cls(url, index=index or gui.central_index, rules=rules_in_effect(config),
                   username=gui.central_username, password=os.environ.get("WEIGHTWARDEN_CENTRAL_PASSWORD", ""),
                   ca_file=gui.central_ca_file, client_cert=gui.central_client_cert,
                   client_key=gui.central_client_key, server_name=gui.central_server_name)

    def _set_error(self, error: CentralError | None) -> None:
        self.error = str(error) if error is not None else ""
        self.error_kind = error.kind if error is not None else ""
        self.stateChanged.emit()
