"""Central sync: destination status from the outbox, a live test through the agent, validated editing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QComboBox
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from tests.agent.forward.certs import make_pki
from tests.gui.helpers import running_agent, wait_until
from weightwarden.agent.config import check_config, load_config
from weightwarden.agent.events import Action, Category, Event
from weightwarden.agent.forward.destination_types import DESTINATION_TYPES, SECRET_KEYS
from weightwarden.agent.store.outbox import Outbox
from weightwarden.gui.models.sync_status import DeadLetterModel, SyncStatusModel
from weightwarden.gui.source import AgentStatus
from weightwarden.gui.sync_config import destination_toml, validate
from weightwarden.gui.views.sync_view import HINTS, SyncView


def test_sync_status_model_passes_qt_model_checks(qtmodeltester: ModelTester) -> None:
    model = SyncStatusModel([{"destination": "splunk", "type": "hec", "format": "default", "target": "https://s",
                              "enabled": True, "last_delivered_at": None, "backlog": 5000, "delivered_total": 1,
                              "dropped_total": 0, "dead_letters": 0, "last_error": "401 Unauthorized",
                              "configured_in": "app"}])
    qtmodeltester.check(model)
    headers = [model.headerData(i, Qt.Orientation.Horizontal) for i in range(model.columnCount())]
    assert model.data(model.index(0, headers.index("Last delivered"))) == "never"
    assert model.data(model.index(0, headers.index("Last error"))) == "401 Unauthorized"
    assert model.data(model.index(0, headers.index("Set in"))) == "app"
    dead = DeadLetterModel([{"time": "2026-11-29T10:00:00.000Z", "record_id": "0193", "sequence": 7,
                             "reason": "400 mapper_parsing_exception"}])
    qtmodeltester.check(dead)
    assert dead.data(dead.index(0, 3)) == "400 mapper_parsing_exception"


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


def test_without_an_agent_the_editor_validates_but_cannot_apply(database: Path, window_factory) -> None:  # type: ignore[no-untyped-def]
    window = window_factory(database)
    view = window.sync
    assert "No destinations configured" in view.result.text()
    assert not view.test_button.isEnabled()
    view.kind.setCurrentText("hec")
    view.name.setText("splunk")
    view.fields["url"].setText("https://splunk.example.org:8088")
    assert not view.validate()  # hec needs a token
    assert "token" in view.problems.text()
    view.fields["token"].setText("s3cret")
    assert view.validate(), view.problems.text()
    assert "[forward.splunk]" in view.preview.toPlainText() and "s3cret" not in view.preview.toPlainText()
    assert not view.save_button.isEnabled() and "not running" in view.save_button.toolTip()


def shown_keys(view: SyncView) -> list[str]:
    return [key for key, edit in view.fields.items()
            if edit.isEnabled() and view.form.isRowVisible(view.field_rows[key])]


def test_the_form_shows_each_types_declared_fields_and_the_agent_accepts_them(
        tmp_path: Path, database: Path, window_factory) -> None:  # type: ignore[no-untyped-def]
    view: SyncView = window_factory(database).sync
    pki = make_pki(tmp_path / "pki")
    files = {"ca_file": str(pki.ca), "client_cert": str(pki.client_cert), "client_key": str(pki.client_key)}
    assert [view.kind.itemText(i) for i in range(view.kind.count())] == list(DESTINATION_TYPES)
    for kind in DESTINATION_TYPES.values():
        view.clear_form()
        view.kind.setCurrentText(kind.name)
        shown = shown_keys(view)
        assert sorted(shown) == sorted(kind.form), kind.name
        assert all(view.fields[key].echoMode() == view.fields[key].EchoMode.Password
                   for key in shown if key in SECRET_KEYS)
        view.name.setText(f"every-{kind.name}-field")
        for key in shown:  # every field filled: the agent's check must accept each one for this type
            view.fields[key].setText(kind.default_format if key == "format" else files.get(key, HINTS[key]))
        if {"api_key", "username"} <= set(shown):  # both accepted, but only the API key would be sent
            assert not view.validate() and "api_key and username" in view.problems.text()
            view.fields["username"].clear()
            view.fields["password"].clear()
            shown = [key for key in shown if key not in ("username", "password")]
        assert view.validate(), (kind.name, view.problems.text())
        assert all(f"\n{key} = " in view.preview.toPlainText() for key in shown)


def test_the_form_takes_the_http_settings_and_checks_what_the_schema_cannot_see(
        tmp_path: Path, database: Path, window_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """HEC and _bulk: indexer acknowledgement from its list, TLS files read as the agent will read them, a
    server_name that is a host name, TLS settings an http:// URL would never use, the proxy the URL goes
    through; what the form accepts, the agent's own config check accepts with the same values."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.org:3128")
    monkeypatch.setenv("NO_PROXY", ".internal.example.org")
    view: SyncView = window_factory(database).sync
    pki = make_pki(tmp_path / "pki")
    view.kind.setCurrentText("syslog")
    assert not view.form.isRowVisible(view.proxy)  # syslog: no HTTP, no proxy
    view.kind.setCurrentText("hec")
    view.name.setText("splunk-cloud")
    view.fields["url"].setText("https://http-inputs.splunk.example.org:443")
    view.fields["token"].setText("s3cret")
    assert view.form.isRowVisible(view.proxy)
    assert "proxy.example.org:3128" in view.proxy.text() and "HTTPS_PROXY" in view.proxy.text()

    def refused(*words: str) -> None:
        assert not view.validate(), view.preview.toPlainText()
        assert all(word in view.problems.text() for word in words), view.problems.text()

    ack = view.field_rows["ack"]
    assert isinstance(ack, QComboBox)
    assert [ack.itemText(i) for i in range(ack.count())] == ["", "auto", "on", "off"]
    ack.setCurrentText("sometimes")
    refused("ack")
    ack.setCurrentIndex(ack.findText("off"))
    assert view.validate(), view.problems.text()
    assert 'ack = "off"' in view.preview.toPlainText()
    view.fields["ca_file"].setText(str(tmp_path / "absent.pem"))
    refused("ca_file", "no such file")
    (tmp_path / "not-pem.txt").write_text("hello\n")
    view.fields["ca_file"].setText(str(tmp_path / "not-pem.txt"))
    refused("ca_file", "no PEM certificate")
    view.fields["ca_file"].setText(str(pki.ca))
    view.fields["client_key"].setText(str(pki.client_key))
    refused("client_key is set without client_cert")
    view.fields["client_cert"].setText(str(pki.client_cert))
    view.fields["client_key"].setText(str(pki.server_key))  # another certificate's key
    refused("client_key", "does not fit")
    view.fields["client_key"].setText(str(pki.client_key))
    view.fields["server_name"].setText("https://siem.example.org:8088")
    refused("server_name", "not a host name")
    view.fields["server_name"].setText("siem.example.org")
    view.fields["timeout_seconds"].setText("0")
    refused("timeout_seconds")
    view.fields["timeout_seconds"].setText("30")
    assert view.validate(), view.problems.text()
    # The agent's own config check (with its TLS file reading) takes what the form accepted, with its values.
    config_file = tmp_path / "agent.toml"
    view.copy_button.click()  # "Copy TOML": the table as the person takes it to a config file
    config_file.write_text(f'[agent]\ndata_dir = "{tmp_path / "data"}"\n\n{QGuiApplication.clipboard().text()}')
    assert check_config(config_file) == []
    [splunk] = load_config(config_file).forward
    assert (splunk.ack, splunk.ca_file, splunk.client_cert, splunk.client_key, splunk.server_name,
            splunk.timeout_seconds) == ("off", str(pki.ca), str(pki.client_cert), str(pki.client_key),
                                        "siem.example.org", 30.0)
    # An http:// URL never uses TLS settings; NO_PROXY and this machine go direct.
    view.fields["url"].setText("http://hec.internal.example.org:8088")
    refused("http://", "server_name", "client_cert")
    assert "directly" in view.proxy.text()
    view.fields["url"].setText("https://127.0.0.1:8088")
    assert "directly" in view.proxy.text()
    # _bulk: basic authentication needs both halves.
    view.clear_form()
    view.kind.setCurrentText("bulk")
    view.name.setText("opensearch")
    view.fields["url"].setText("https://opensearch.example.org:9200")
    view.fields["username"].setText("weightwarden")
    refused("username and password go together")
    view.fields["password"].setText("pw")
    assert view.validate(), view.problems.text()
    assert "pw" not in view.preview.toPlainText()  # a secret never shows in the preview


def rows(view: SyncView) -> dict[str, dict[str, Any]]:
    return {row["destination"]: row for row in view.model.rows}


def select(view: SyncView, name: str) -> None:
    view.table.selectRow([row["destination"] for row in view.model.rows].index(name))


def test_destinations_are_added_edited_and_removed_live_through_the_agent(
        qtbot: QtBot, tmp_path: Path, window_factory) -> None:  # type: ignore[no-untyped-def]
    fixed, first, second = tmp_path / "fixed.jsonl", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    with running_agent(tmp_path, extra_config=f'[forward.fixed]\ntype = "file"\npath = "{fixed}"\n') as agent:
        window = window_factory(tmp_path / "data" / "weightwarden.db", config=load_config(agent.config_file))  # type: ignore[attr-defined]
        view: SyncView = window.sync
        assert view.save_button.isEnabled(), view.save_button.toolTip()  # user mode: the owner is an admin
        assert rows(view)["fixed"]["configured_in"] == "config file"
        select(view, "fixed")
        assert not view.edit_button.isEnabled() and "config file" in view.edit_button.toolTip()
        # Invalid: every problem shown, nothing sent.
        view.kind.setCurrentText("syslog")
        view.name.setText("siem")
        view.fields["port"].setText("70000")
        view.fields["transport"].setText("ftp")
        qtbot.mouseClick(view.save_button, Qt.MouseButton.LeftButton)
        problems = view.problems.text()
        assert "port" in problems and "transport" in problems and "address" in problems, problems
        assert "siem" not in rows(view)
        # The agent's own refusal is shown too: a name the config file already uses.
        view.clear_form()
        view.kind.setCurrentText("file")
        view.name.setText("fixed")
        view.fields["path"].setText(str(first))
        qtbot.mouseClick(view.save_button, Qt.MouseButton.LeftButton)
        assert "defined in the config file" in view.problems.text(), view.problems.text()
        # Add: live at once, from the beginning of the log.
        view.clear_form()
        view.kind.setCurrentText("file")
        view.name.setText("local")
        view.fields["path"].setText(str(first))
        view.fields["format"].setText("native")
        qtbot.mouseClick(view.save_button, Qt.MouseButton.LeftButton)
        assert "Applied: local started" in view.problems.text(), view.problems.text()
        assert rows(view)["local"]["configured_in"] == "app"
        qtbot.waitUntil(lambda: first.exists() and "agent-started" in first.read_text(), timeout=10_000)
        # Edit: the form shows what the agent holds; the new path gets what is recorded from now on.
        select(view, "local")
        assert view.edit_button.isEnabled(), view.edit_button.toolTip()
        qtbot.mouseClick(view.edit_button, Qt.MouseButton.LeftButton)
        assert view.fields["path"].text() == str(first) and view.name.isReadOnly()
        view.fields["path"].setText(str(second))
        qtbot.mouseClick(view.save_button, Qt.MouseButton.LeftButton)
        assert "Applied: local replaced" in view.problems.text(), view.problems.text()
        marker = Event(Action.SCAN_FINISHED, Category.FILE, "after the edit")
        agent.record(marker)
        qtbot.waitUntil(lambda: second.exists() and marker.id in second.read_text(), timeout=10_000)
        assert marker.id not in first.read_text() and "agent-started" not in second.read_text()
        # The test button reaches the destination as the agent now has it.
        select(view, "local")
        qtbot.mouseClick(view.test_button, Qt.MouseButton.LeftButton)
        assert "Delivered test record" in view.result.text(), view.result.text()
        # Remove.
        select(view, "local")
        qtbot.mouseClick(view.remove_button, Qt.MouseButton.LeftButton)
        assert "Removed local" in view.result.text() and "local" not in rows(view)
        assert [f.name for f in agent.evidence.forwarders.forwarders] == ["fixed"]
        # Someone who is not an admin: the agent says so in ping, and the app explains the disabled buttons.
        view.source.agent = AgentStatus(True, admin=False, user="ana")
        view.source.agentChanged.emit(view.source.agent)
        assert not view.save_button.isEnabled() and "Only an admin" in view.save_button.toolTip()
        assert "ana" in view.save_button.toolTip()


def test_dead_letters_are_listed_per_destination(tmp_path: Path, window_factory) -> None:  # type: ignore[no-untyped-def]
    sink = tmp_path / "sink.jsonl"
    with running_agent(tmp_path, extra_config=f'[forward.es]\ntype = "file"\npath = "{sink}"\n') as agent:
        database = tmp_path / "data" / "weightwarden.db"
        outbox = Outbox(database)
        try:
            # the first records (agent-started, sensor health) pass the ordered queue, then the writer
            wait_until(lambda: agent.writer.flush(timeout=10) and len(outbox.after(0, 3)) == 3,
                       what="three records committed")
            refused = outbox.after(0, 3)
            for record in refused:  # what the _bulk transport does with a 400 item
                outbox.dead_letter("es", record, f"400 mapper_parsing_exception for {record.sequence}")
        finally:
            outbox.close()
        window = window_factory(database, config=load_config(agent.config_file))  # type: ignore[attr-defined]
        view: SyncView = window.sync
        assert rows(view)["es"]["dead_letters"] == 3
        assert "3 records refused in all" in view.dead_label.text() and not view.dead_table.isVisibleTo(view)
        select(view, "es")
        assert view.dead_table.isVisibleTo(view)
        assert view.dead_model.rowCount() == 3 and "es refused 3 records" in view.dead_label.text()
        listed = [view.dead_model.row(i) for i in range(3)]
        assert [d["record_id"] for d in listed] == [r.id for r in reversed(refused)]  # newest first
        assert view.dead_model.data(view.dead_model.index(0, 3)).startswith("400 mapper_parsing_exception")
        assert "refused" in view.summary()
