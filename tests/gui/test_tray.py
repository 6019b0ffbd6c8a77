"""Notifications for new alerts at or above the configured severity."""

from __future__ import annotations

import dataclasses

from pytestqt.qtbot import QtBot

from tests.gui.helpers import make_alert
from weightwarden.agent.store.review_queries import AlertRow
from weightwarden.gui.tray import Tray, notification_text


def row(severity: int, sequence: int) -> AlertRow:
    alert = make_alert(sequence, severity=severity)
    import json
    return AlertRow(sequence, alert.id, sequence, "2026-11-29T10:00:00.000Z", severity, alert.rule_id, alert.title,
                    alert.model, "open", json.dumps(alert.to_dict()))


def test_only_alerts_at_or_above_the_threshold_notify(qtbot: QtBot) -> None:
    tray = Tray(notify_severity=7)
    shown: list[tuple[str, str]] = []
    tray.notified.connect(lambda title, body: shown.append((title, body)))
    tray.new_alerts([row(3, 1), row(6, 2)])
    assert shown == []
    tray.new_alerts([row(3, 3), row(9, 4), row(7, 5)])
    assert len(shown) == 1 and shown[0][0] == "Weightwarden: 2 new alerts" and "9 critical" in shown[0][1]


def test_single_alert_text() -> None:
    title, body = notification_text([row(8, 1)])
    assert title == "Weightwarden: 8 high alert" and "Copy of protected model" in body


def test_a_later_state_of_an_incident_does_not_notify_again(qtbot: QtBot) -> None:
    tray = Tray(notify_severity=7)
    shown: list[tuple[str, str]] = []
    tray.notified.connect(lambda title, body: shown.append((title, body)))
    first = row(9, 1)
    tray.new_alerts([first])
    tray.new_alerts([dataclasses.replace(row(9, 2), incident=first.id, updates=1)])
    assert len(shown) == 1
