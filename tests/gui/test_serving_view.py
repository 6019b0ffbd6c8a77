"""The Models view's serving table, fed the serving sensor's own section (agent/serving/section.py)."""

from __future__ import annotations

import json
from pathlib import Path

from pytestqt.modeltest import ModelTester

from weightwarden.agent.activity import STATUS_KEY
from weightwarden.agent.events import ProcessInfo, format_time, utc_now
from weightwarden.agent.serving.observations import ServedModel, Server
from weightwarden.agent.serving.section import PeerRow, row_of, servers_in
from weightwarden.agent.store import Store
from weightwarden.gui.models.serving import ServingModel, serving_rows


def _section() -> dict[str, object]:
    exposed = Server(1, "0.0.0.0", 11434, "all-interfaces", 70, ProcessInfo(70, name="ollama", user="bo"),
                     (ServedModel("llama-private", "/home/bo/m/model.safetensors", True),), "ollama", False, "GET ok")
    private = Server(1, "127.0.0.1", 8000, "loopback", 71, ProcessInfo(71, name="vllm", user="ana"),
                     (ServedModel("other", "/home/ana/o.safetensors", True),), "openai", True, "401")
    return {"servers": [row_of(exposed, [PeerRow("10.9.0.2", 3000, 0, 300000, 6000000)]).to_dict(),
                        row_of(private, []).to_dict()]}


def test_the_serving_table_passes_qt_model_checks(qtmodeltester: ModelTester) -> None:
    servers = servers_in({"serving": _section()})
    model = ServingModel(serving_rows(servers))
    qtmodeltester.check(model)
    assert model.rowCount() == 2
    assert model.data(model.index(0, 0)) == "llama-private"
    assert model.data(model.index(0, 5)) == "NO authentication"
    assert model.data(model.index(0, 6)) == "1" and model.data(model.index(1, 5)) == "asks for credentials"


def test_the_models_view_shows_the_running_agents_servers(database: Path, window_factory) -> None:  # type: ignore[no-untyped-def]
    store = Store(str(database))
    snapshot = {"time": format_time(utc_now()), "running": True, "interval_seconds": 2.0, "serving": _section()}
    store.set_state(STATUS_KEY, json.dumps(snapshot))
    store.close()
    window = window_factory(database)
    window.show_view("models")
    window.models.refresh()
    assert window.models.serving.rowCount() == 2
    assert "2</b> listening processes" in window.models.serving_summary.text()
    assert "1</b> answer without credentials" in window.models.serving_summary.text()
