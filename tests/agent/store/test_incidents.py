"""One alert per incident: updates stay stored (chained), readers see each incident once, latest state first."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import sqlite_utils

from weightwarden.agent.alert_evidence import EgressBudgetEvidence
from weightwarden.agent.events import Alert
from weightwarden.agent.store import Store, migrations
from weightwarden.agent.store.review_queries import AlertFilter, AlertSort


def first(rule: str = "model-egress-budget", severity: int = 9) -> Alert:
    alert = Alert(rule, "egress", severity, "sent 50%", evidence=EgressBudgetEvidence(progress=0.5, updates=0))
    return Alert(rule, "egress", severity, "sent 50%", id=alert.id,
                 evidence=dataclasses.replace(alert.evidence, incident=alert.id))


def update(of: Alert, updates: int, severity: int | None = None) -> Alert:
    return Alert(of.rule_id, of.title, severity or of.severity, f"update {updates}",
                 evidence=EgressBudgetEvidence(incident=of.id, updates=updates, progress=0.5 + updates / 10))


def test_lists_counts_and_cli_records_show_each_incident_once_in_its_latest_state(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    egress, other = first(), first("model-copy", 6)
    store.write([egress, other])
    store.write([update(egress, 1), update(egress, 2)])
    review = store.review
    page = review.alert_page(AlertFilter(), AlertSort())
    assert [(r.record["message"], r.incident, r.updates) for r in page] == [
        ("update 2", egress.id, 2), ("sent 50%", other.id, 0)]
    assert review.alert_count(AlertFilter()) == 2
    assert review.alert_count(AlertFilter(every_update=True)) == 4
    assert review.alert_count(AlertFilter(text="budget")) == 1
    assert [r.record["message"] for r in review.incident(egress.id)] == ["sent 50%", "update 1", "update 2"]
    records = review.latest_records()
    assert [(r["message"], r["updates"], r["incident"]) for r in records] == [
        ("sent 50%", 0, other.id), ("update 2", 2, egress.id)]
    assert len(review.latest_records(every_update=True)) == 4
    assert [a.record["message"] for a in review.alerts_after(0, AlertFilter())] == ["update 2", "sent 50%"]
    store.close()


def test_an_update_keeps_the_review_status_unless_it_escalates(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    egress = first(severity=7)
    store.write([egress])
    store.review.add_review(egress.id, "acknowledge", uid=0, user="root", text="our own bucket")
    calm, worse = update(egress, 1), update(egress, 2, severity=9)
    store.write([calm])
    assert store.review.alert(calm.id).status == "acknowledged"  # type: ignore[union-attr]
    store.write([worse])
    assert store.review.alert(worse.id).status == "open"  # type: ignore[union-attr]
    assert [r["text"] for r in store.review.reviews(worse.id)] == ["our own bucket"]
    store.review.add_review(egress.id, "resolve", uid=0, user="root")  # through a stale row: the whole incident
    assert {r.status for r in store.review.incident(worse.id)} == {"resolved"}
    store.close()


def test_migration_fills_incidents_of_alerts_stored_before_it(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    db = sqlite_utils.Database(tmp_path / "old.db")
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", [m for m in migrations.MIGRATIONS if m[0] < "0008"])
        migrations.migrate(db)
    egress = first()
    rows = [(a, n) for n, a in enumerate([egress, update(egress, 1), first("model-copy")], start=1)]
    for alert, sequence in rows:
        db.table("alerts").insert({"id": alert.id, "sequence": sequence, "time": "2026-11-29T10:00:00.000Z",
                                   "rule_id": alert.rule_id, "severity": alert.severity, "title": alert.title,
                                   "status": "open", "record": json.dumps(alert.to_dict())})
    db.conn.commit()
    assert migrations.migrate(db)[0] == "0008_alert_incidents"
    got = {r["id"]: (r["incident"], r["latest"], r["updates"]) for r in db.table("alerts").rows}
    assert got == {egress.id: (egress.id, 0, 0), rows[1][0].id: (egress.id, 1, 1),
                   rows[2][0].id: (rows[2][0].id, 1, 0)}
