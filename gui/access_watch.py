"""Which new alerts are refused opens of the app user's own programs: those are told at once.

Two sources, one answer: an app that reads the database looks at the alerts stored since it last looked
(`from_store`); an app the database is closed to gets the user's own alerts from the agent ("my-alerts",
`from_mine`). What was there when the app started is not news. Each incident is told once: its later
states (the count of refused opens growing) are not.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from weightwarden.agent.store.review_queries import AlertFilter, AlertReview
from weightwarden.gui.access_request import ACCESS_RULES, refusal_of


class AccessWatch(QObject):
    refused = Signal(object)  # a Refusal (gui/access_request.py)

    def __init__(self, user: str) -> None:
        super().__init__()
        self.user = user
        self._sequence: int | None = None
        self._mine: set[str] | None = None
        self._told: set[str] = set()  # incidents told

    def from_store(self, review: AlertReview) -> None:
        if self._sequence is None:
            self._sequence = review.max_sequence()
            return
        rows = [row for rule in ACCESS_RULES
                for row in review.alerts_after(self._sequence, AlertFilter(rule=rule, every_update=True), 100)]
        self._sequence = max([self._sequence, review.max_sequence()])
        for row in sorted(rows, key=lambda r: r.sequence):
            record = row.record
            if (record.get("process") or {}).get("user") == self.user:
                self._tell(row.incident or row.id, record)

    def from_mine(self, alerts: list[dict[str, Any]]) -> None:
        """The agent's "my-alerts" rows: all about this user's processes (the kernel said who asks)."""
        keys = {str(a.get("incident") or a.get("id")) for a in alerts}
        if self._mine is None:
            self._mine = keys
            return
        for alert in reversed(alerts):  # oldest first
            key = str(alert.get("incident") or alert.get("id"))
            if key not in self._mine and alert.get("rule") in ACCESS_RULES:
                self._tell(key, alert)
        self._mine |= keys

    def _tell(self, incident: str, record: dict[str, Any]) -> None:
        refusal = refusal_of(record)
        if refusal is not None and incident not in self._told:
            self._told.add(incident)
            self.refused.emit(refusal)
