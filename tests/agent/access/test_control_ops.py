"""Access requests, approvals, refusals and revokes through a real running agent's control socket.

The agent runs in a thread (user mode, as root); an ordinary account made for the test talks to the same
socket from a forked child that has become that account, so the kernel (SO_PEERCRED) names it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.access.conftest import Person, as_user
from tests.agent.cli.helpers import run_cli
from tests.gui.helpers import running_agent
from tests.waiting import wait_for
from weightwarden.agent import control
from weightwarden.agent.access import grants
from weightwarden.agent.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="grants are written by root")


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder an ordinary account can enter (pytest's temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="ww-access-ops-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def ask(path: str, payload: dict[str, Any]) -> dict[str, Any]:
    return control.request(path, payload)


def ask_as(person: Person, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    code, message = as_user(person, lambda: json.dumps(control.request(path, payload)))
    assert code == 0, message
    reply: dict[str, Any] = json.loads(message)
    return reply


def access_records(database: str, count: int) -> list[dict[str, Any]]:
    store = Store(database, read_only=True)
    try:
        def found() -> list[dict[str, Any]] | None:
            records = [e for e in store.events() if e["event"]["action"].startswith("access-")]
            return records if len(records) >= count else None

        return wait_for(found, timeout=20, what=f"{count} access records in the store")
    finally:
        store.close()


def test_requests_approvals_refusals_and_revokes_end_to_end(base: Path, person: Person) -> None:
    with running_agent(base) as agent:
        sock = agent.control.path
        os.chmod(sock, 0o666)  # as in system mode: who may act is decided per request, by uid
        data = agent.config.data_dir
        # A user asks; what they claim about who they are is ignored, control characters are dropped.
        mine = ask_as(person, sock, {"op": "access-request", "model": "llama", "program": "/usr/bin/python3",
                                     "justification": "eval\x07 for ticket 42\nsecond line", "user": "root",
                                     "uid": 0, "hours": 4})
        assert mine["ok"], mine
        asked = mine["request"]
        assert (asked["uid"], asked["user"], asked["justification"], asked["seconds"]) == (
            person.uid, person.name, "eval for ticket 42second line", 4 * 3600)
        theirs = ask(sock, {"op": "access-request", "model": "mistral", "justification": "root's own"})
        assert theirs["ok"], theirs
        # Each sees what is theirs; an admin sees everything.
        listed = ask_as(person, sock, {"op": "access-list"})
        assert listed["admin"] is False and [r["id"] for r in listed["requests"]] == [asked["id"]]
        everything = ask(sock, {"op": "access-list"})
        assert {r["id"] for r in everything["requests"]} == {asked["id"], theirs["request"]["id"]}
        # Admin ops are refused to the user, whatever they send.
        for op, extra in (("access-grant", {"request": asked["id"]}), ("access-refuse", {"request": asked["id"]}),
                          ("access-revoke", {"grant": "0123456789ab"})):
            refused = ask_as(person, sock, {"op": op, **extra})
            assert refused == {"ok": False, "error": f"{op} needs an admin (root or the admin group); "
                                                     f"you are {person.name}"}
        # Bad input gets a reason.
        assert ask(sock, {"op": "access-grant", "request": "../../etc"})["error"] == \
            "request '../../etc' is not an id (12 hex digits)"
        assert ask(sock, {"op": "access-grant", "request": "0123456789ab"})["error"] == \
            "no pending request 0123456789ab"
        for hours in (0, -1, 169, "8", True):
            bad = ask(sock, {"op": "access-grant", "request": asked["id"], "hours": hours})
            assert not bad["ok"] and "hours must be" in bad["error"], (hours, bad)
        assert "no such user" in ask(sock, {"op": "access-grant", "user": "no-such-user-ww", "model": "m"})["error"]
        assert "justification is required" in ask_as(person, sock, {"op": "access-request", "model": "m",
                                                                     "justification": " \n "})["error"]
        assert "longer than 1000" in ask_as(person, sock, {"op": "access-request", "model": "m",
                                                            "justification": "x" * 1001})["error"]
        assert "absolute" in ask_as(person, sock, {"op": "access-request", "model": "m", "program": "python",
                                                   "justification": "j"})["error"]
        # The admin approves the user's request for 2 h: grants.json has it, naming the approver.
        approved = ask(sock, {"op": "access-grant", "request": asked["id"], "hours": 2})
        assert approved["ok"], approved
        grant = approved["grant"]
        on_file = grants.GrantBook(data).grants()
        assert [(g.id, g.uid, g.model, g.program, g.granted_by) for g in on_file] == [
            (grant["id"], person.uid, "llama", "/usr/bin/python3", 0)]
        assert 7100 < on_file[0].expires_at - on_file[0].granted_at <= 7200
        mine_now = ask_as(person, sock, {"op": "access-list"})
        assert mine_now["requests"] == [] and [g["id"] for g in mine_now["grants"]] == [grant["id"]]
        # Refuse root's request with a note, then revoke the grant; both ids are checked.
        refused = ask(sock, {"op": "access-refuse", "request": theirs["request"]["id"], "note": "use the\x1b 8b"})
        assert refused["ok"], refused
        assert ask(sock, {"op": "access-refuse", "request": theirs["request"]["id"]})["error"].startswith(
            "no pending request")
        assert ask(sock, {"op": "access-revoke", "grant": "0123456789ab"})["error"] == "no grant 0123456789ab"
        assert ask(sock, {"op": "access-revoke", "grant": grant["id"]})["ok"]
        assert grants.GrantBook(data).grants() == ()
        records = access_records(agent.config.database_path, 5)
    actions = [r["event"]["action"] for r in records]
    assert actions == ["access-requested", "access-requested", "access-granted", "access-refused", "access-revoked"]
    sequences = [r["sequence"] for r in records]
    assert sequences == sorted(sequences) and len(set(sequences)) == 5
    requested = records[0]["details"]["request"]
    assert (requested["id"], requested["uid"], requested["user"]) == (asked["id"], person.uid, person.name)
    granted = records[2]["details"]
    assert granted["approver"] == {"uid": 0, "user": "root"} and granted["request"] == asked["id"]
    assert granted["grant"]["id"] == grant["id"]
    assert records[3]["details"]["note"] == "use the 8b" and records[3]["details"]["refused_by"]["user"] == "root"
    assert records[4]["details"]["grant"]["id"] == grant["id"]
    verified = run_cli("verify", "--unsigned", "--config", str(agent.config_file), "--mode", "user")  # type: ignore[attr-defined]
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_access_command_goes_through_the_running_agent(base: Path) -> None:
    """`weightwarden access request|grant|refuse|list|revoke` take the app's path while the agent runs: the
    control socket's checks answer (an id out of shape, too many hours), and approvals work by request id."""
    with running_agent(base) as agent:
        config = ["--config", str(agent.config_file), "--mode", "user"]  # type: ignore[attr-defined]
        filed = run_cli("access", "request", "llama", "--justification", "nightly eval", "--for", "2h", *config)
        assert filed.returncode == 0, filed.stderr
        request_id = filed.stdout.split()[1]
        assert f"weightwarden access grant --request {request_id}" in filed.stdout
        other = run_cli("access", "request", "mistral", "--justification", "try it", *config)
        other_id = other.stdout.split()[1]
        listed = run_cli("access", "list", *config)
        assert request_id in listed.stdout and other_id in listed.stdout and "2.0 h asked" in listed.stdout
        too_long = run_cli("access", "grant", "--request", request_id, "--for", "8d", *config)
        assert too_long.returncode == 2 and "hours must be more than 0 and at most 168" in too_long.stderr
        bad_id = run_cli("access", "refuse", "nope", *config)
        assert bad_id.returncode == 2 and "request 'nope' is not an id" in bad_id.stderr
        granted = run_cli("access", "grant", "--request", request_id, *config)
        assert granted.returncode == 0, granted.stderr
        grant_id = granted.stdout.split()[1].rstrip(":")
        (made,) = grants.GrantBook(agent.config.data_dir).grants()
        assert made.id == grant_id and made.model == "llama" and made.expires_at - made.granted_at == 7200
        refused = run_cli("access", "refuse", other_id, "--note", "not on this machine", *config)
        assert refused.returncode == 0 and "refused request" in refused.stdout, refused.stderr
        assert run_cli("access", "revoke", grant_id, *config).returncode == 0
        again = run_cli("access", "revoke", grant_id, *config)
        assert again.returncode == 2 and f"no grant {grant_id}" in again.stderr
        records = access_records(agent.config.database_path, 5)
    assert [r["event"]["action"] for r in records] == [
        "access-requested", "access-requested", "access-granted", "access-refused", "access-revoked"]
    assert records[3]["details"]["note"] == "not on this machine"
    # Without the agent, refuse says what it needs; a grant falls back to root's direct path.
    stopped = ["--config", str(agent.config_file), "--mode", "user"]  # type: ignore[attr-defined]
    alone = run_cli("access", "refuse", "0123456789ab", *stopped)
    assert alone.returncode == 2 and "needs the running agent" in alone.stderr
    direct = run_cli("access", "grant", "root", "llama", "--for", "1h", *stopped)
    assert direct.returncode == 0, direct.stderr
    assert [g.model for g in grants.GrantBook(agent.config.data_dir).grants()] == ["llama"]


def test_a_user_cannot_flood_the_request_folder(tmp_path: Path) -> None:
    from weightwarden.agent.control import Peer
    from weightwarden.agent.control_access import MAX_PENDING_PER_USER, AccessDesk
    from weightwarden.agent.events import Event

    recorded: list[Event] = []
    desk = AccessDesk(str(tmp_path), recorded.append)
    someone = Peer(pid=1, uid=64123, gid=64123)
    ask_for = {"model": "llama", "justification": "eval"}
    for _ in range(MAX_PENDING_PER_USER):
        assert desk.handle(someone, "access-request", ask_for, admin=False)["ok"]
    refused = desk.handle(someone, "access-request", ask_for, admin=False)
    assert refused == {"ok": False, "error": f"you have {MAX_PENDING_PER_USER} requests waiting for an admin; "
                                             "ask again once they are answered"}
    assert desk.handle(Peer(pid=1, uid=0, gid=0), "access-request", ask_for, admin=True)["ok"]  # others may
    pending = grants.pending_requests(str(tmp_path))
    assert sorted(r.uid for r in pending) == [0] + [64123] * MAX_PENDING_PER_USER
    assert len(recorded) == MAX_PENDING_PER_USER + 1
    assert grants.take_pending(str(tmp_path)) == []  # recorded once: at filing, never again by the poll


def test_grants_made_at_once_on_several_threads_are_all_kept(tmp_path: Path) -> None:
    """The agent grants on its socket's worker threads while its dispatcher sweeps: no change is lost."""
    import threading

    book = grants.GrantBook(str(tmp_path))
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def grant_ten() -> None:
        start.wait()
        try:
            for _ in range(10):
                grants.GrantBook(str(tmp_path)).grant("root", "llama", None, 3600)
                grants.GrantBook(str(tmp_path)).sweep()
        except BaseException as error:  # reported below, with the count
            failures.append(error)

    threads = [threading.Thread(target=grant_ten) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == [] and len(book.grants()) == 80


def test_an_approval_bounds_the_time_a_dropped_request_file_asked(tmp_path: Path) -> None:
    """A request a user dropped into the folder themselves says what it likes: approved, it gets at most
    7 days, and 8 h when what it asked is no time at all."""
    from weightwarden.agent.control import Peer
    from weightwarden.agent.control_access import MAX_HOURS, AccessDesk

    folder = Path(grants.prepare_requests_dir(str(tmp_path)))
    asked = {"forever": 1e12, "nan": float("nan"), "negative": -5.0}
    for index, (name, seconds) in enumerate(asked.items()):
        (folder / f"0-{index:012x}.json").write_text(json.dumps(
            {"id": f"{index:012x}", "model": name, "program": None, "justification": "j", "seconds": seconds,
             "time": 0}))
    desk = AccessDesk(str(tmp_path), lambda _event: None)
    root = Peer(pid=1, uid=0, gid=0)
    granted = {}
    for index, name in enumerate(asked):
        reply = desk.handle(root, "access-grant", {"request": f"{index:012x}"}, admin=True)
        assert reply["ok"], reply
        granted[name] = reply["grant"]["expires_at"] - reply["grant"]["granted_at"]
    assert granted == {"forever": MAX_HOURS * 3600, "nan": 8 * 3600, "negative": 8 * 3600}
