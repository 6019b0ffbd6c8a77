"""Exports: filtered alerts as CSV and JSON lines, one alert as a standalone HTML incident report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from weightwarden.agent.store import Store
from weightwarden.agent.store.review_queries import AlertFilter, AlertSort
from weightwarden.gui.export import export_csv, export_incident, export_json


def test_exports_follow_the_filter(tmp_path: Path, database: Path) -> None:
    store = Store(database, read_only=True)
    try:
        flt = AlertFilter(min_severity=7)
        expected = store.review.alert_count(flt)
        assert export_csv(store.review, flt, AlertSort(), tmp_path / "a.csv") == expected
        with (tmp_path / "a.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == expected and all(int(r["severity"]) >= 7 for r in rows)
        assert rows[0]["process"] and rows[0]["destination"].startswith("temporary")
        assert export_json(store.review, AlertFilter(), AlertSort("severity"), tmp_path / "a.json") == 30
        records = [json.loads(line) for line in (tmp_path / "a.json").read_text().splitlines()]
        assert [r["severity"] for r in records] == sorted((r["severity"] for r in records), reverse=True)
        assert {"id", "time", "rule", "process", "destination", "evidence", "status"} <= set(records[0])
    finally:
        store.close()


def test_incident_report_is_a_standalone_html_page(tmp_path: Path, database: Path) -> None:
    writer = Store(database)
    alert_id = writer.alerts(limit=1)[0]["id"]
    writer.review.add_review(alert_id, "justify", uid=1000, user="ana", text="<b>eval</b> upload")
    writer.close()
    store = Store(database, read_only=True)
    try:
        assert export_incident(store.review, alert_id, tmp_path / "r.html")
        assert export_incident(store.review, alert_id, tmp_path / "r.pdf")
        assert not export_incident(store.review, "missing", tmp_path / "x.html")
    finally:
        store.close()
    pdf = (tmp_path / "r.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!doctype html>") and "Incident report" in page and "@media print" in page
    assert "&lt;b&gt;eval&lt;/b&gt; upload" in page  # what people typed is escaped
    assert "Evidence timeline" in page and alert_id in page
    if "model-copy" in page:
        assert "T1005" in page and "AML.T0035" in page


def test_process_tree_uses_the_parent_chain(tmp_path: Path) -> None:
    from tests.gui import real_alerts
    from weightwarden.agent.events import utc_now
    from weightwarden.gui.report import AlertDetail

    store = Store(tmp_path / "p.db")
    scp = {**real_alerts.process("scp", 30, "scp model host:"), "parents": ["bash", "sshd"]}
    alert = real_alerts.transfer("m", "/models/m/model", scp, when=utc_now())
    assert alert.process is not None and [p.name for p in alert.process.parents] == ["bash", "sshd"]
    store.write([alert])
    detail = AlertDetail.load(store.review, alert.id)
    store.close()
    assert detail is not None
    from weightwarden.gui.report import alert_html
    page = alert_html(detail)
    assert page.index("sshd") < page.index("bash") < page.index("scp model host:")


def test_a_derived_copy_report_says_how_similar_and_which_tensors(tmp_path: Path) -> None:
    from weightwarden.agent.detect.copy import CopyCandidate, copy_alert
    from weightwarden.agent.detect.rules import load_rules
    from weightwarden.agent.events import ModelFile
    from weightwarden.agent.similarity.matcher import TensorMatch
    from weightwarden.gui.report import AlertDetail, alert_html

    rule = load_rules().get("model-copy")
    assert rule is not None
    match = TensorMatch("acme-chat", ("/models/acme-chat/model.safetensors",), 11, 15, 110, 150, 11, 15,
                        similarity=0.85, agreement=0.987, matched_names=("lm_head.weight", "<q>.weight"),
                        public_tensors=14, public_base="org/base", delta_share=0.998, delta_z=300.0)
    new = ModelFile(path="/home/ana/Downloads/x.gguf", format="gguf", size=100, model="x")
    alert = copy_alert(CopyCandidate(new, (), (match,), "local"), rule)
    assert alert is not None and "similarity 0.85, sign agreement 98.7%" in alert.message
    store = Store(tmp_path / "d.db")
    store.write([alert])
    detail = AlertDetail.load(store.review, alert.id)
    store.close()
    assert detail is not None
    page = alert_html(detail)
    assert "Similarity" in page and "0.85 (sign agreement 98.7%)" in page
    assert "lm_head.weight, &lt;q&gt;.weight" in page  # tensor names are escaped
    assert "org/base, 14 tensors public; the copy carries 100% of the fine-tune" in page


def test_an_extraction_report_names_the_server_the_peer_and_the_volume(tmp_path: Path) -> None:
    from tests.agent.detect.fixture_cases import cases, run_case
    from weightwarden.gui.report import AlertDetail, alert_html

    # the real engine's alert from the rule's own fixture (tests/agent/detect/fixtures/serving.yml)
    case = next(c for name, c in cases() if name.startswith("serving: a burst of short connections"))
    alert = run_case(case, tmp_path)[0]
    store = Store(tmp_path / "d.db")
    store.write([alert])
    detail = AlertDetail.load(store.review, alert.id)
    store.close()
    assert detail is not None
    page = alert_html(detail)
    assert "Extraction through the API" in page and "10.99.0.2" in page and "python3[310] bo" in page
    assert "Connections in the burst window" in page and "burst_connections 1000" in page
