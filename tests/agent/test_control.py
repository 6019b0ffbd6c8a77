"""The control socket: peer uid authentication, what each kind of caller may do, and robustness."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gui.helpers import make_database
from weightwarden.agent.config import load_config, managed_destinations_file
from weightwarden.agent.control import (
    Authorizer,
    ControlError,
    ControlServer,
    Peer,
    for_agent,
    request,
)
from weightwarden.agent.forward.manager import ForwardManager
from weightwarden.agent.store import Store

NOBODY = Peer(pid=4242, uid=64123, gid=64123)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ControlServer, Store, list[str]]]:
    store = Store(make_database(tmp_path / "ww.db", alerts=3))
    scans: list[str] = []
    server = ControlServer(str(tmp_path / "control.sock"), store, Authorizer(),
                           on_scan_now=lambda: scans.append("scan"))
    server.start()
    try:
        yield server, store, scans
    finally:
        server.stop()
        store.close()


def first_alert(store: Store) -> str:
    return store.alerts(limit=1)[0]["id"]


def test_ping_names_the_peer_from_the_kernel(served: tuple[ControlServer, Store, list[str]]) -> None:
    server, _store, _ = served
    reply = request(server.path, {"op": "ping", "uid": 12345})  # a claimed uid is ignored
    assert reply["ok"] and reply["peer"]["uid"] == os.geteuid()
    assert reply["peer"]["admin"] is (os.geteuid() == 0)


def test_justify_and_resolve_are_recorded_with_the_peer(served: tuple[ControlServer, Store, list[str]]) -> None:
    server, store, _ = served
    alert_id = first_alert(store)
    reply = request(server.path, {"op": "justify", "alert_id": alert_id, "text": "eval upload\x07 to our hub"})
    assert reply["ok"] and reply["review"]["text"] == "eval upload to our hub"
    if os.geteuid() == 0:
        assert request(server.path, {"op": "resolve", "alert_id": alert_id})["ok"]
        assert store.review.alert(alert_id).status == "resolved"  # type: ignore[union-attr]
    reviews = store.review.reviews(alert_id)
    assert reviews[0]["uid"] == os.geteuid() and reviews[0]["action"] == "justify"


def test_status_changes_need_an_admin(served: tuple[ControlServer, Store, list[str]]) -> None:
    server, store, _ = served
    alert_id = first_alert(store)
    for op in ("acknowledge", "resolve", "false-positive", "reopen"):
        reply = server.handle(NOBODY, {"op": op, "alert_id": alert_id})
        assert not reply["ok"] and "admin" in reply["error"]
    assert server.handle(NOBODY, {"op": "justify", "alert_id": alert_id, "text": "mine"})["ok"]
    assert store.review.alert(alert_id).status == "open"  # type: ignore[union-attr]
    assert server.refused == 4


def test_admin_group_and_owner(tmp_path: Path) -> None:
    import grp

    group = grp.getgrgid(os.getegid())
    member = Peer(pid=1, uid=64123, gid=group.gr_gid)
    assert Authorizer(admin_group=group.gr_name).is_admin(member)
    assert not Authorizer(admin_group="no-such-group-ww").is_admin(member)
    assert Authorizer(owner_uid=64123).is_admin(member)
    assert Authorizer().is_admin(Peer(pid=1, uid=0, gid=0))
    assert not Authorizer().is_admin(NOBODY)


def test_bad_requests_get_reasons_not_crashes(served: tuple[ControlServer, Store, list[str]]) -> None:
    server, store, _ = served
    assert "unknown op" in request(server.path, {"op": "drop-table"})["error"]
    assert "no alert" in request(server.path, {"op": "justify", "alert_id": "nope", "text": "x"})["error"]
    empty = {"op": "justify", "alert_id": first_alert(store), "text": "  "}
    assert "needs text" in request(server.path, empty)["error"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(server.path)
        sock.sendall(b"not json\n" + b"x" * (70 * 1024) + b"\n")
        replies = sock.makefile().read()
    assert "not JSON" in replies and "too large" in replies
    assert request(server.path, {"op": "ping"})["ok"]  # still serving


def test_scan_now_is_rate_limited(served: tuple[ControlServer, Store, list[str]]) -> None:
    server, _store, scans = served
    assert request(server.path, {"op": "scan-now"})["ok"]
    assert not request(server.path, {"op": "scan-now"})["ok"]
    assert scans == ["scan"]


def test_stale_socket_is_replaced_and_a_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a crashed agent leaves
    store = Store(make_database(tmp_path / "ww.db", alerts=1))
    first = ControlServer(str(path), store, Authorizer())
    first.start()
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        with pytest.raises(ControlError, match="another agent"):
            ControlServer(str(path), store, Authorizer()).start()
    finally:
        first.stop()
        store.close()
    assert not path.exists()


def test_unreachable_agent_is_a_control_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="not reachable"):
        request(str(tmp_path / "missing.sock"), {"op": "ping"}, timeout=1)


def test_admins_change_list_and_test_destinations_live(tmp_path: Path) -> None:
    """forward-set/-remove/-list and sync-test need an admin (decided from the peer's uid); the change reaches
    the running forwarders; forward-list and sync-test use what is in force now."""
    (tmp_path / "data").mkdir()
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[agent]\nmode = "user"\ndata_dir = "{tmp_path / "data"}"\n')
    config = load_config(config_file)
    store = Store(config.database_path)
    manager = ForwardManager(config, lambda _record: None)
    server = for_agent(config, store, on_scan_now=lambda: None, on_review=lambda _review: None,
                       apply_destinations=manager.apply)
    server.start()
    try:
        values = {"type": "file", "path": str(tmp_path / "out.jsonl")}
        refused = server.handle(NOBODY, {"op": "forward-set", "name": "local", "values": values})
        assert not refused["ok"] and "needs an admin" in refused["error"]
        assert not server.handle(NOBODY, {"op": "forward-remove", "name": "local"})["ok"]
        assert not os.path.exists(managed_destinations_file(config)) and manager.forwarders == []
        # Over the socket, as the agent's own user: in user mode that user administers its agent.
        reply = request(server.path, {"op": "forward-set", "name": "local", "values": values})
        assert reply["ok"] and reply["changes"] == {"local": "started"}, reply
        for op in ("forward-list", "sync-test"):
            refused = server.handle(NOBODY, {"op": op, "destination": "local"})
            assert not refused["ok"] and "needs an admin" in refused["error"]
        listed = request(server.path, {"op": "forward-list"})
        assert listed["ok"] and [d["name"] for d in listed["destinations"]] == ["local"]
        assert [f.name for f in manager.forwarders] == ["local"]
        tested = request(server.path, {"op": "sync-test", "destination": "local"})  # the live destination
        assert tested["ok"], tested
        assert json.loads((tmp_path / "out.jsonl").read_text().splitlines()[-1])["event"]["id"] == tested["id"]
        invalid = request(server.path, {"op": "forward-set", "name": "local", "values": {"type": "file", "keep": 0}})
        assert not invalid["ok"] and len(invalid["problems"]) == 2, invalid  # keep out of range, and no path
        assert request(server.path, {"op": "forward-remove", "name": "local"})["changes"] == {"local": "stopped"}
        assert manager.forwarders == [] and load_config(config_file).forward == ()
    finally:
        server.stop()
        manager.stop(0)
        store.close()

