"""System mode seen by a desktop user who is not an admin, as a real unprivileged uid (root runs the test).

The data dir is 0750 root-only, as /var/lib/weightwarden is to anyone outside weightwarden-admin; the
control socket sits in a world-reachable runtime dir, as /run/weightwarden. The user's process (uid
nobody, no groups) may justify an alert through the socket but not resolve it, and its app shows a
limited-view banner and a "Your alerts" tab with the alerts about its own processes (served by the agent)
instead of failing on the unreadable database.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gui.helpers import make_alert, make_database
from weightwarden.agent.access.grants import GrantBook
from weightwarden.agent.control import Authorizer, ControlServer, Peer
from weightwarden.agent.control_access import AccessDesk
from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.store import Store

pytestmark = pytest.mark.root
NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"
SITE = next(Path(sys.prefix, "lib").glob("python3.*/site-packages"), None)

# Runs as nobody: the test's interpreter lives under /root (0700), so the system one of the same minor
# version loads this checkout's packages from the venv's site-packages (readable by everyone).
USER_SIDE = """
import json, os, site, sys
site.addsitedir(sys.argv[1])
from weightwarden.agent import control
database, socket_path, alert_id = sys.argv[2:5]
replies = {op: control.request(socket_path, {"op": op, "alert_id": alert_id, "text": "our org's hub namespace"})
           for op in ("justify", "resolve")}
from PySide6.QtWidgets import QApplication
app = QApplication([])
from weightwarden.gui.app_window import MainWindow
window = MainWindow(database, control_path=socket_path, tray=False)
mine = window.mine
shown = [mine.model.row(i)["id"] for i in range(mine.model.rowCount())]
mine.table.selectRow(0)
mine.justification.setText("a second note, from the app")
mine.justify()
access = window.access
access.refresh()
listed_before = [r["id"] for r in access.requests.rows]
window.request_access(None)
dialog = window.request_dialog
dialog.model.setText("llama")
dialog.program.setText("/usr/bin/python3")
dialog.justification.setPlainText("evaluation for ticket ML-142")
dialog.send_button.click()
access.refresh()
print(json.dumps({"uid": os.getuid(), "replies": replies, "banner": [window.banner.level, window.banner.text()],
                  "rows": window.alerts.model.rowCount(), "mine": shown, "result": mine.result.text(),
                  "current": window.tabs.currentWidget() is mine,
                  "visible": [window.tabs.isTabVisible(i) for i in range(window.tabs.count())],
                  "access": {"before": listed_before, "sent": (dialog.reply or {}).get("request"),
                             "error": dialog.message.text(), "admin": access.admin,
                             "requests": [[r["id"], r["user"]] for r in access.requests.rows],
                             "review_hidden": access.review_bar.isHidden(),
                             "revoke_hidden": access.revoke_button.isHidden()}}))
window.source.stop()
"""


@pytest.fixture
def machine() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to run part of the test as another uid")
    if shutil.which("setpriv") is None or SITE is None:
        pytest.skip("needs setpriv (util-linux) and a venv site-packages")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                           text=True, check=False) if os.path.exists(SYSTEM_PYTHON) else None
    if probe is None or probe.stdout.strip() != str(sys.version_info[:2]):
        pytest.skip(f"needs {SYSTEM_PYTHON} of this Python's minor version to run the app as nobody")
    base = Path(tempfile.mkdtemp(prefix="ww-limited-", dir="/tmp"))  # pytest's tmp_path is root-only (0700)
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def test_a_non_admin_may_justify_but_not_resolve_and_sees_a_limited_view(machine: Path) -> None:
    data, run = machine / "var-lib", machine / "run"
    data.mkdir(mode=0o750)
    run.mkdir(mode=0o755)
    database = make_database(data / "weightwarden.db", alerts=3)  # about "ana"'s processes
    store = Store(database)
    own = dataclasses.replace(make_alert(7), process=ProcessInfo(pid=4242, name="rclone", user="nobody"))
    store.write([own])
    alert_id = own.id
    server = ControlServer(str(run / "control.sock"), store, Authorizer(admin_group="weightwarden-admin"),
                           world_accessible=True, access=AccessDesk(str(data), lambda event: store.write([event])))
    server.start()
    roots = server.handle(Peer(pid=1, uid=0, gid=0), {"op": "access-request", "model": "mistral",
                                                       "justification": "root's own, not nobody's to see"})
    assert roots["ok"], roots
    try:
        result = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", SYSTEM_PYTHON, "-c", USER_SIDE,
             str(SITE), str(database), str(run / "control.sock"), alert_id],
            capture_output=True, text=True, timeout=120, cwd=machine,
            env={"PATH": "/usr/bin:/bin", "HOME": str(machine), "QT_QPA_PLATFORM": "offscreen",
                 "XDG_RUNTIME_DIR": str(machine)})
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    assert seen["uid"] == NOBODY
    assert seen["replies"]["justify"]["ok"] is True
    assert seen["replies"]["resolve"] == {"ok": False, "error": "resolve needs an admin (root or the admin group); "
                                                                 "you are nobody"}
    level, text = seen["banner"]
    assert level == "warn" and text.startswith("Limited view: the alert database") and "you are nobody" in text
    assert "shows you the alerts about your own processes" in text and seen["rows"] == 0
    # "Your alerts" (holding exactly the alert about nobody's own process, not ana's) and "Access" (requests
    # go through the agent) are shown; the views that read the database are not.
    assert seen["current"] and seen["visible"] == [False, False, False, True, False, False, True]
    assert seen["mine"] == [alert_id] and seen["result"] == "Justification recorded."
    # Access, for a non-admin: their own requests only, no approve, refuse or revoke; the request the dialog
    # sent is filed as nobody (the kernel's word) and recorded.
    access = seen["access"]
    assert access["before"] == [] and access["admin"] is False, access
    assert access["sent"] is not None and access["sent"]["uid"] == NOBODY, access["error"]
    assert access["requests"] == [[access["sent"]["id"], "nobody"]]
    assert access["review_hidden"] and access["revoke_hidden"]
    requested = [e["details"]["request"] for e in store.events() if e["event"]["action"] == "access-requested"]
    assert [(r["user"], r["model"]) for r in requested] == [("root", "mistral"), ("nobody", "llama")]
    assert GrantBook(str(data)).grants() == ()
    reviews = store.review.reviews(alert_id)
    store.close()
    assert [(r["action"], r["uid"], r["user"], r["text"]) for r in reviews] == \
        [("justify", NOBODY, "nobody", "our org's hub namespace"),
         ("justify", NOBODY, "nobody", "a second note, from the app")]
