"""The app's access side with a real agent: a refused open of the user's own program is told (someone
else's is not), the request dialog files a request the agent records, the Access view approves it into
grants.json and shows the grant, and the Audit view flags a world-readable model.

The refused opens are Events of the shape the enforcement writes (action, process, file, model,
details.decision), handed to the running agent's pipeline: its detection rules raise the alerts and its
store keeps them, as for a real refusal.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot
from safetensors.numpy import save_file

from tests.gui.helpers import running_agent
from weightwarden.agent.access import grants
from weightwarden.agent.events import Action, Category, Event, FileInfo, ModelFile, ProcessInfo
from weightwarden.agent.store import Store
from weightwarden.gui.app_window import MainWindow, _user
from weightwarden.gui.models.access import GrantsModel, RequestsModel
from weightwarden.gui.models.audit import HIGH_RISK_BACKGROUND, AuditModel

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="grants are written by root (the agent runs as root)")
MODEL_PATH = "/srv/models/llama/model.safetensors"


def refused_open(user: str, pid: int, *, enforced: bool = True) -> Event:
    """One refused open as the enforcement reports it (docs/access.md, agent/events.py ACCESS_DENIED)."""
    process = ProcessInfo(pid=pid, name="python3", executable="/usr/bin/python3.11",
                          command_line="python3.11 eval.py", user=user, uid=0 if user == "root" else 1000)
    decision = {"policy": "llama-weights", "reason": "no allow entry of llama-weights matches",
                "access": "read", "enforced": enforced, "grant": None, "break_glass": False}
    return Event(Action.ACCESS_DENIED if enforced else Action.ACCESS_WOULD_DENY, Category.FILE,
                 f"python3 (pid {pid}, {user}) may not open {MODEL_PATH}: no allow entry of llama-weights matches",
                 file=FileInfo(path=MODEL_PATH), model="llama", process=process, details={"decision": decision})


def stored_alerts(database: str, rule: str) -> list[dict[str, Any]]:
    store = Store(database, read_only=True)
    try:
        return [a for a in store.alerts() if a["rule"] == rule]
    finally:
        store.close()


def stored_events(database: str, action: str) -> list[dict[str, Any]]:
    store = Store(database, read_only=True)
    try:
        return [e for e in store.events() if e["event"]["action"] == action]
    finally:
        store.close()


@pytest.fixture
def app(tmp_path: Path, window_factory: Any) -> Iterator[tuple[Any, MainWindow]]:
    with running_agent(tmp_path) as agent:
        window = window_factory(Path(agent.config.database_path), control_path=agent.control.path, tray=True,
                                poll_ms=50)
        yield agent, window


def test_a_refused_open_of_my_program_is_told_and_access_is_requested_and_approved(
        app: tuple[Any, MainWindow], qtbot: QtBot) -> None:
    agent, window = app
    database = agent.config.database_path
    told: list[tuple[str, str]] = []
    assert window.tray is not None
    window.tray.notified.connect(lambda title, body: told.append((title, body)))
    me = _user()
    # Someone else's refused open: stored as an alert, never told to this user.
    agent.record(refused_open("ana", 4100))
    qtbot.waitUntil(lambda: len(stored_alerts(database, "access-denied")) == 1, timeout=15_000)
    # This user's own: told once, naming the model, the program and why.
    agent.record(refused_open(me, 4200))
    qtbot.waitUntil(lambda: bool(told), timeout=15_000)
    agent.record(refused_open(me, 4200))  # the same incident again: not told twice
    qtbot.waitUntil(lambda: len(stored_alerts(database, "access-denied")) >= 2, timeout=15_000)
    qtbot.wait(300)  # several polls of the store (poll_ms=50) in which nothing more may be told
    assert told == [("Weightwarden: access to llama refused",
                     f"/usr/bin/python3.11 was not allowed to open llama: python3 (pid 4200, {me}) may not open "
                     f"{MODEL_PATH}: no allow entry of llama-weights matches\nClick to request access.")]
    # "Request access": the dialog comes filled from the refusal; the justification is required.
    window.tray.request_access()
    dialog = window.request_dialog
    assert dialog is not None and dialog.isVisible()
    assert (dialog.model.text(), dialog.program.text()) == ("llama", "/usr/bin/python3.11")
    assert not dialog.send_button.isEnabled()
    dialog.justification.setPlainText("x" * 1500)
    assert len(dialog.justification.toPlainText()) == 1000  # bounded as the agent bounds it
    dialog.justification.setPlainText("evaluation for ticket ML-142")
    dialog.hours.setValue(4)
    assert dialog.send_button.isEnabled()
    dialog.send_button.click()
    assert not dialog.isVisible() and dialog.reply is not None, dialog.message.text()
    request_id = dialog.reply["request"]["id"]
    qtbot.waitUntil(lambda: bool(stored_events(database, "access-requested")), timeout=15_000)
    requested = stored_events(database, "access-requested")
    assert [r["details"]["request"]["id"] for r in requested] == [request_id]
    assert (requested[0]["details"]["request"]["user"], requested[0]["details"]["request"]["program"],
            requested[0]["details"]["request"]["justification"], requested[0]["details"]["request"]["seconds"]) == (
        me, "/usr/bin/python3.11", "evaluation for ticket ML-142", 4 * 3600)
    # The Access view (an admin's: the test runs as root) lists it; Approve for 2 h writes grants.json.
    window.show_view("access")
    view = window.access
    assert view.admin and view.review_bar.isVisibleTo(window)
    assert [r["id"] for r in view.requests.rows] == [request_id]
    view.requests_table.selectRow(0)
    view.hours.setValue(2)
    view.approve_button.click()
    assert view.message.text() == f"Approved: {me} may open llama for 2 h.", view.message.text()
    (grant,) = grants.GrantBook(agent.config.data_dir).grants()
    assert (grant.user, grant.model, grant.program, grant.expires_at - grant.granted_at) == (
        me, "llama", "/usr/bin/python3.11", 7200)
    assert view.requests.rows == [] and [g["id"] for g in view.grants.rows] == [grant.id]
    left = view.grants.data(view.grants.index(0, 3))
    assert left in ("1 h 59 min", "2 h 00 min"), left
    qtbot.waitUntil(lambda: len(stored_events(database, "access-granted")) == 1, timeout=15_000)
    assert stored_events(database, "access-granted")[0]["details"]["request"] == request_id
    # Revoke from the view.
    view.grants_table.selectRow(0)
    view.revoke_button.click()
    assert grants.GrantBook(agent.config.data_dir).grants() == () and view.grants.rows == []


def test_the_alert_detail_offers_request_access_for_a_refused_open_only(app: tuple[Any, MainWindow],
                                                                         qtbot: QtBot) -> None:
    agent, window = app
    agent.record(refused_open(_user(), 4300, enforced=False))
    qtbot.waitUntil(lambda: bool(stored_alerts(agent.config.database_path, "access-would-deny")), timeout=15_000)
    qtbot.waitUntil(lambda: window.alerts.model.rowCount() > 0, timeout=15_000)
    asked: list[Any] = []
    window.alerts.detail.requestAccess.connect(asked.append)
    alert_id = stored_alerts(agent.config.database_path, "access-would-deny")[0]["id"]
    window.alerts.detail.show_alert(alert_id)
    button = window.alerts.detail.request_button
    assert not button.isHidden() and button.isEnabled()
    button.click()
    assert [(r.model, r.program, r.enforced) for r in asked] == [("llama", "/usr/bin/python3.11", False)]
    window.alerts.detail.show_alert(None)
    assert button.isHidden()
    agent.record(refused_open("ana", 4301, enforced=False))  # someone else's: a request is for oneself
    qtbot.waitUntil(lambda: len(stored_alerts(agent.config.database_path, "access-would-deny")) == 2,
                    timeout=15_000)
    theirs = next(a["id"] for a in stored_alerts(agent.config.database_path, "access-would-deny")
                  if a["process"]["user"] == "ana")
    window.alerts.detail.show_alert(theirs)
    assert window.alerts.detail.detail is not None and button.isHidden()


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """Models others can reach: pytest's temporary folders are 0700, which no world-readable file escapes."""
    folder = Path(tempfile.mkdtemp(prefix="ww-gui-audit-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_audit_view_flags_a_world_readable_model_and_exports(open_folder: Path, tmp_path: Path,
                                                                 window_factory: Any, qtbot: QtBot) -> None:
    paths = {}
    for name, mode in (("open", 0o644), ("private", 0o600)):
        path = open_folder / f"{name}.safetensors"
        save_file({"w": np.arange(16, dtype=np.float32)}, str(path))
        path.chmod(mode)
        paths[name] = str(path)
    (tmp_path / "data").mkdir()
    database = tmp_path / "data" / "weightwarden.db"
    store = Store(database)
    store.upsert_model_files([ModelFile(path=p, format="safetensors", size=os.path.getsize(p), model=f"m-{n}")
                              for n, p in paths.items()], seen=datetime.now(UTC))
    store.close()
    policy = tmp_path / "policy.yml"
    policy.write_text("id: open-model\napplies_to: {models: [m-open]}\nmode: enforce\nallow:\n  - users: [ana]\n")
    window = window_factory(database)
    window.audit.policy_paths = [str(policy)]
    window.show_view("audit")
    assert window.audit.running and not window.audit.run_button.isEnabled()  # made off the window's thread
    qtbot.waitUntil(lambda: window.audit.report is not None, timeout=30_000)
    assert window.audit.run_button.isEnabled()
    model = window.audit.model
    rows = {row["model"]: index for index, row in enumerate(model.rows)}
    flagged = model.index(rows["m-open"], 5)
    assert model.data(flagged) == "temporary, world-readable"  # under /tmp
    assert model.data(flagged, 8).color().name() == HIGH_RISK_BACKGROUND  # BackgroundRole
    assert model.data(model.index(rows["m-private"], 0), 8) is None  # "temporary" alone is no high risk
    assert model.data(model.index(rows["m-open"], 8)) == "open-model enforce (policy.yml:1): ana (read)"
    assert model.data(model.index(rows["m-private"], 8)) == "-"
    assert window.audit.summary.text().endswith("1 at high risk (highlighted)")
    html, pdf = tmp_path / "audit.html", tmp_path / "audit.pdf"
    assert window.audit.export(str(html)) and window.audit.export(str(pdf))
    assert "world-readable" in html.read_text() and "<b>open-model</b> enforce" in html.read_text()
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert not window.audit.export(str(tmp_path / "missing-folder" / "audit.html"))
    assert "Not exported" in window.audit.message.text()


def test_the_access_and_audit_models_pass_qt_model_checks(qtmodeltester: ModelTester) -> None:
    requests = RequestsModel()
    requests.set_rows([{"id": "0123456789ab", "uid": 1000, "user": "ana", "model": "llama", "program": None,
                        "justification": "eval", "seconds": 28800, "time": 1.8e9}])
    qtmodeltester.check(requests)
    grants_model = GrantsModel()
    grants_model.set_rows([{"id": "0123456789ab", "user": "ana", "uid": 1000, "model": "llama",
                            "program": "/usr/bin/python3", "granted_by": 0, "granted_at": 1.8e9,
                            "expires_at": 1.8e9 + 3600, "justification": "", "seconds_left": 3599}])
    qtmodeltester.check(grants_model)
    audit = AuditModel()
    audit.set_rows([{"path": "/m/a.safetensors", "model": "a", "status": "missing", "error": None, "mode": None,
                     "owner_group": "-", "flags": [], "who": "", "readers": {"count": 0, "names": [],
                                                                               "truncated": False},
                     "copies": [], "policy_text": "-", "high_risk": False}])
    qtmodeltester.check(audit)


def test_a_limited_users_refusals_come_from_the_agents_my_alerts(tmp_path: Path, qtbot: QtBot) -> None:
    """A user the database is closed to learns of their refused opens from "my-alerts": the program and the
    file come with each alert; what was there when the app started is not news."""
    from weightwarden.agent.control import Authorizer, ControlServer, request
    from weightwarden.agent.detect.engine import DetectionEngine
    from weightwarden.agent.detect.rules import load_rules
    from weightwarden.gui.access_watch import AccessWatch

    engine = DetectionEngine(load_rules())
    store = Store(tmp_path / "weightwarden.db")
    server = ControlServer(str(tmp_path / "control.sock"), store, Authorizer())
    server.start()
    try:
        me = _user()
        store.write(engine.process(refused_open(me, 5100)))  # before the app looked: not news
        watch = AccessWatch(me)
        told: list[Any] = []
        watch.refused.connect(told.append)
        watch.from_mine(request(server.path, {"op": "my-alerts"})["alerts"])
        store.write(engine.process(refused_open(me, 5200, enforced=False)))
        mine = request(server.path, {"op": "my-alerts"})["alerts"]
        assert mine[0]["process"] == {"pid": 5200, "name": "python3", "executable": "/usr/bin/python3.11", "user": me}
        assert mine[0]["paths"] == [MODEL_PATH]
        watch.from_mine(mine)
        watch.from_mine(mine)  # asked again: told once
    finally:
        server.stop()
        store.close()
    assert [(r.model, r.program, r.enforced, r.user) for r in told] == [("llama", "/usr/bin/python3.11", False, me)]


def test_a_refused_open_loud_enough_for_the_alert_notification_is_told_once(
        app: tuple[Any, MainWindow], qtbot: QtBot, window_factory: Any) -> None:
    agent, _ = app
    window = window_factory(Path(agent.config.database_path), control_path=agent.control.path, tray=True,
                            poll_ms=50, notify_severity=0)
    told: list[str] = []
    assert window.tray is not None
    window.tray.notified.connect(lambda title, _body: told.append(title))
    agent.record(refused_open(_user(), 4400))
    qtbot.waitUntil(lambda: bool(told), timeout=15_000)
    qtbot.wait(300)  # several polls in which the alert notification could have told it again
    assert told == ["Weightwarden: access to llama refused"]
