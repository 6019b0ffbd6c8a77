"""Central sync: destination status from the outbox, a live test through the agent, validated editing."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from tests.gui.helpers import running_agent
from weightwarden.agent.config import load_config
from weightwarden.gui.models.sync_status import SyncStatusModel
from weightwarden.gui.sync_config import destination_toml, validate


def test_sync_status_model_passes_qt_model_checks(qtmodeltester: ModelTester) -> None:
    model = SyncStatusModel([{"destination": "splunk", "type": "hec", "format": "default", "target": "https://s",
                              "enabled": True, "last_delivered_at": None, "backlog": 5000, "delivered_total": 1,
                              "dropped_total": 0, "dead_letters": 0, "last_error": "401 Unauthorized"}])
    qtmodeltester.check(model)
    assert model.data(model.index(0, 4)) == "never"
    assert model.data(model.index(0, 9)) == "401 Unauthorized"


def test_destination_snippets_are_checked_by_the_agents_config_rules() -> None:
    good = destination_toml("siem", "syslog", {"address": "siem.example.org", "port": "6514", "transport": "tls"})
    assert good.startswith("[forward.siem]\ntype = \"syslog\"") and validate(good) == []
    bad = destination_toml("siem", "syslog", {"address": "siem.example.org", "port": "70000", "transport": "ftp"})
    messages = " ".join(p.message for p in validate(bad))
    assert "port" in messages and "transport" in messages
    assert all(p.line for p in validate(bad))


def test_status_and_live_test_through_the_agent(qtbot: QtBot, tmp_path: Path, database: Path,
                                                window_factory) -> None:  # type: ignore[no-untyped-def]
    sink = tmp_path / "siem.jsonl"
    extra = f'[forward.archive]\ntype = "file"\npath = "{sink}"\n'
    with running_agent(tmp_path, extra_config=extra) as agent:
        config = load_config(agent.config_file)  # type: ignore[attr-defined]
        window = window_factory(database, config=config)
        window.show_view("sync")
        view = window.sync
        assert view.model.rowCount() == 1 and view.model.row(0)["destination"] == "archive"
        assert not view.test_button.isEnabled()  # nothing selected yet
        view.table.selectRow(0)
        assert view.test_button.isEnabled()
        qtbot.mouseClick(view.test_button, Qt.MouseButton.LeftButton)
        assert "Delivered test record" in view.result.text(), view.result.text()
        qtbot.waitUntil(lambda: sink.exists() and "test" in sink.read_text(), timeout=5000)
        assert any(json.loads(line).get("details", {}).get("test") or "test" in line
                   for line in sink.read_text().splitlines())


def test_editor_validates_and_cannot_pretend_to_apply(database: Path, window_factory) -> None:  # type: ignore[no-untyped-def]
    window = window_factory(database)
    view = window.sync
    assert "No destinations configured" in view.result.text()
    assert not view.test_button.isEnabled()
    view.kind.setCurrentText("hec")
    view.name.setText("splunk")
    view.fields["url"].setText("https://splunk.example.org:8088")
    assert not view.validate()  # hec needs a token
    assert "token" in view.problems.text()
    view.fields["token_file"].setText("/etc/weightwarden/hec.token")
    assert view.validate(), view.problems.text()
    assert "[forward.splunk]" in view.preview.toPlainText()
    assert not view.save_button.isEnabled() and "restart" in view.save_button.toolTip()
