"""Every built-in rule, end to end: its fixture events -> the real engine -> the store -> the read API -> the
detail view (a real widget) and the incident report. The rule's ATT&CK/ATLAS ids are shown, and egress
alerts get their progress bar."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests.agent.detect.fixture_cases import BUILTIN, cases, run_case
from weightwarden.agent.alert_evidence import EgressBudgetEvidence
from weightwarden.agent.events import Alert
from weightwarden.agent.store import Store
from weightwarden.gui.export import export_incident
from weightwarden.gui.source import DataSource
from weightwarden.gui.views.detail_view import AlertDetailView

BAR = "<td width='"  # a cell of the egress progress bar (gui/report.py _progress); nothing else sizes cells


def first_alerting_case(rule_id: str) -> dict[str, object]:
    for _name, case in cases():
        if any(a.get("rule") == rule_id for a in case.get("alerts", [])):
            return case
    raise AssertionError(f"no fixture case raises {rule_id}")


@pytest.mark.parametrize("rule_id", [r.id for r in BUILTIN.rules])
def test_a_rule_alert_reads_back_and_shows_its_rule(rule_id: str, qtbot: QtBot, tmp_path: Path) -> None:
    rule = BUILTIN.get(rule_id)
    assert rule is not None and rule.techniques
    raised = run_case(first_alerting_case(rule_id), tmp_path)
    alert: Alert = [a for a in raised if a.rule_id == rule_id][-1]  # the incident's latest state
    database = tmp_path / "data" / "weightwarden.db"
    database.parent.mkdir()
    store = Store(database)
    store.write(raised)
    row = store.review.alert(alert.id)
    store.close()
    assert row is not None and row.evidence == alert.evidence  # the typed evidence survives the store
    egress = isinstance(alert.evidence, EgressBudgetEvidence)
    assert egress == (rule.correlate == "egress-budget")

    source = DataSource(str(database))
    view = AlertDetailView(source)
    qtbot.addWidget(view)
    try:
        view.show_alert(alert.id)
        assert view.detail is not None and view.detail.evidence == alert.evidence
        page = view.browser.toPlainText()
    finally:
        source.stop()
    assert f"Rule: {rule.title}" in page and rule.description[:60] in page
    assert all(technique in page for technique in rule.techniques), (rule.techniques, page)
    assert ("ATT&CK:" in page) == any(not t.startswith("AML.") for t in rule.techniques)
    assert ("ATLAS:" in page) == any(t.startswith("AML.") for t in rule.techniques)
    assert ("Egress progress" in page) == egress
    if isinstance(alert.evidence, EgressBudgetEvidence):
        sent, total = alert.evidence.bytes_sent, alert.evidence.model_bytes
        assert f"sent ({sent / total:.0%})" in page and alert.evidence.progress > 0

    reader = Store(database, read_only=True)
    try:
        assert export_incident(reader.review, alert.id, tmp_path / "report.html", BUILTIN)
    finally:
        reader.close()
    report = (tmp_path / "report.html").read_text()
    assert f"Rule: {html.escape(rule.title)}" in report
    assert all(technique in report for technique in rule.techniques)
    assert (BAR in report) == egress
    if isinstance(alert.evidence, EgressBudgetEvidence):
        done = max(1, round(alert.evidence.progress * 100))
        assert f"<td width='{done}%' style='background-color:#ef6c00'>" in report
