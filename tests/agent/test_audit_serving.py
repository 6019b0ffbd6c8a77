"""The audit keeps model servers: the ones serving now (the running agent's snapshot) and every exposure
finding on record, raised by the real rules from the pipeline's own `model-served` events."""

from __future__ import annotations

import json
from pathlib import Path

from weightwarden.agent.activity import STATUS_KEY
from weightwarden.agent.audit.from_store import audit_store
from weightwarden.agent.audit.render import to_html
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.rules import load_rules
from weightwarden.agent.events import ProcessInfo, format_time, utc_now
from weightwarden.agent.pipeline.serving_events import served_event
from weightwarden.agent.serving.observations import ServedModel, Server, ServingStarted
from weightwarden.agent.serving.section import row_of
from weightwarden.agent.store import Store


def _server(address: str, reach: str, pid: int) -> Server:
    return Server(1, address, 11434, reach, pid, ProcessInfo(pid, name="ollama", user="bo", session_id=pid),
                  (ServedModel("llama-private", "/home/bo/m/model.safetensors", True),), "ollama", False, "GET ok")


def test_exposure_findings_stay_in_the_audit_and_a_server_exposed_now_is_high_risk(tmp_path: Path) -> None:
    engine = DetectionEngine(load_rules())
    exposed, private = _server("0.0.0.0", "all-interfaces", 80), _server("127.0.0.1", "loopback", 81)
    events = [served_event(ServingStarted(s), utc_now()) for s in (exposed, private)]
    alerts = [a for e in events for a in engine.process(e)]
    assert [a.rule_id for a in alerts] == ["model-served-to-all-interfaces"]  # loopback only: no finding
    store = Store(tmp_path / "ww.db")
    store.write([*events, *alerts])
    try:
        report = audit_store(store, str(tmp_path))  # the agent is not running: the finding alone
        assert not report.high_risk and report.serving.agent_running is False
        assert [f.rule for f in report.serving.findings] == ["model-served-to-all-interfaces"]
        snapshot = {"time": format_time(utc_now()), "running": True, "interval_seconds": 2.0,
                    "serving": {"servers": [row_of(exposed, []).to_dict(), row_of(private, []).to_dict()]}}
        store.set_state(STATUS_KEY, json.dumps(snapshot))
        report = audit_store(store, str(tmp_path))
        assert report.high_risk and report.to_dict()["summary"]["servers_exposed"] == 1
        assert "NO authentication" in to_html(report) and "Model servers" in to_html(report)
    finally:
        store.close()
