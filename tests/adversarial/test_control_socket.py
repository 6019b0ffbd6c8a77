"""Adversarial (issue 15, item 4): the control socket holds against the local users it is open to.

Each test is an attack from issue 15 made by a real unprivileged account: `nobody` (any local user) and a
member of a test admin group (an admin, who is still not root). Clients are tests/adversarial/control_client.py
run with the system python3 under setpriv. The server is either the real control server for a system-mode
config, in this process (for counting its threads and descriptors exactly), or the agent exactly as the
installed service runs it (tests/agent/test_installed_scope.py `InstalledAgent`).
Every one of these tests failed on the code before the fix (see the report in the commit that added them).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.test_installed_scope import WEIGHTWARDEN, InstalledAgent
from tests.gui.helpers import make_database
from tests.waiting import wait_for
from weightwarden.agent.config import load_config
from weightwarden.agent.control import ControlServer, for_agent, request
from weightwarden.agent.forward.manager import ForwardManager
from weightwarden.agent.store import Store

pytestmark = pytest.mark.root

CLIENT_SOURCE = Path(__file__).with_name("control_client.py")
SYSTEM_PYTHON = "/usr/bin/python3"
FLOOD = 400


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int

    def argv(self, *argv: str) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", *argv]

    def client(self, client: Path, sock: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(SYSTEM_PYTHON, str(client), sock, *args), stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
                                env={"PATH": "/usr/bin:/bin", "HOME": "/"})

    def ask(self, client: Path, sock: str, *requests: dict[str, Any] | bytes) -> list[Any]:
        """Each request on one connection, as this user; each reply parsed ("closed" when there was none)."""
        lines = [(r if isinstance(r, bytes) else json.dumps(r).encode()).hex() for r in requests]
        run = subprocess.run(self.argv(SYSTEM_PYTHON, str(client), sock, "raw"), input="\n".join(lines) + "\n",
                             capture_output=True, text=True, timeout=60, cwd="/",
                             env={"PATH": "/usr/bin:/bin", "HOME": "/"})
        assert run.returncode == 0, run.stderr
        return [line if line == "closed" else json.loads(line) for line in run.stdout.splitlines()]


@dataclass(frozen=True)
class Accounts:
    nobody: Account
    admin: Account  # a member of the admin group, not root
    admin_group: str
    place: Path  # 0755: every account reaches sockets and the client in here
    client: Path


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    if os.geteuid() != 0:
        pytest.skip("running clients as other users needs root")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} runs the clients")
    entry = pwd.getpwnam("nobody")
    nobody = Account("nobody", entry.pw_uid, entry.pw_gid)
    tag = secrets.token_hex(3)
    group, user = f"wwsockadm{tag}", f"wwsockad{tag}"
    place = Path(tempfile.mkdtemp(prefix="ww-sock-"))
    try:
        place.chmod(0o755)
        client = place / CLIENT_SOURCE.name
        shutil.copyfile(CLIENT_SOURCE, client)
        client.chmod(0o644)
        subprocess.run(["groupadd", group], check=True, capture_output=True)
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", group, user],
                       check=True, capture_output=True)
        member = pwd.getpwnam(user)
        yield Accounts(nobody, Account(user, member.pw_uid, member.pw_gid), group, place, client)
    finally:
        subprocess.run(["userdel", "--force", user], check=False, capture_output=True)
        subprocess.run(["groupdel", group], check=False, capture_output=True)
        shutil.rmtree(place, ignore_errors=True)


@dataclass
class Served:
    server: ControlServer
    store: Store
    manager: ForwardManager
    path: str


@pytest.fixture
def served(accounts: Accounts) -> Iterator[Served]:
    """The control server of a system-mode config (admin group: the test's), served from this process."""
    home = Path(tempfile.mkdtemp(dir=accounts.place))
    home.chmod(0o755)
    data = home / "data"
    data.mkdir(mode=0o755)
    config_file = home / "config.toml"
    config_file.write_text(f'[agent]\nmode = "system"\ndata_dir = "{data}"\nadmin_group = "{accounts.admin_group}"\n')
    config = load_config(config_file)
    store = Store(make_database(Path(config.database_path), alerts=3))
    manager = ForwardManager(config, lambda _record: None)
    server = for_agent(config, store, on_scan_now=lambda: None, on_review=lambda _review: None,
                       apply_destinations=manager.apply)
    server.start()
    try:
        yield Served(server, store, manager, server.path)
    finally:
        server.stop()
        manager.stop(0)
        store.close()
        shutil.rmtree(home, ignore_errors=True)


def threads_and_descriptors(pid: int | str = "self") -> tuple[int, int]:
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


def flood(accounts: Accounts, path: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """FLOOD connections from nobody, each asked for a ping, held open; the client's tally once it has them."""
    flooder = accounts.nobody.client(accounts.client, path, "flood", str(FLOOD), stdin=subprocess.PIPE)
    assert flooder.stdout is not None
    tally = json.loads(flooder.stdout.readline() or "null")  # the client's own timeouts bound this read
    assert tally is not None, flooder.stderr.read() if flooder.stderr else ""
    return flooder, tally


def let_go(process: subprocess.Popen[str], *, kill: bool = False) -> None:
    """End a client (closing its stdin lets a flooder go) and close its pipes."""
    if kill:
        process.kill()
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=10)


# ---------------------------------------------------------------------------------------------- the flood

def test_a_flood_from_nobody_costs_no_threads_and_few_descriptors(accounts: Accounts, served: Served) -> None:
    """Was: 400 connections from nobody -> 402 threads and 400 descriptors, for as long as nobody liked."""
    threads_before, fds_before = threads_and_descriptors()
    flooder, tally = flood(accounts, served.path)
    try:
        threads, fds = threads_and_descriptors()
        print(f"flood of {FLOOD}: {tally['served']} served, {tally['refused']} refused; threads {threads_before} -> "
              f"{threads}, descriptors {fds_before} -> {fds}")
        print(tally)
        assert tally["connected"] + tally["closed"] >= FLOOD - 8, tally
        assert tally["served"] <= 8, tally
        assert any("too many connections from uid" in reason for reason in tally["reasons"]), tally
        assert threads <= threads_before, "the flood cost threads"
        # nobody's 8 connections, plus the three pipes this process holds to the flooding client
        assert fds <= fds_before + 8 + 3, "the flood cost more descriptors than nobody's share"
        # Everyone else is still served while nobody holds their share.
        assert accounts.admin.ask(accounts.client, served.path, {"op": "ping"})[0]["ok"]
        assert request(served.path, {"op": "ping"})["ok"]
    finally:
        let_go(flooder)
    wait_for(lambda: served.server.snapshot()["connections"] == 0, timeout=10, what="the flood's connections closed")


def test_the_installed_agent_under_a_flood_from_nobody(accounts: Accounts) -> None:
    """The same flood against `weightwarden agent --mode system` as the unit runs it: its threads and
    descriptors (/proc/PID) stay where they were."""
    home = Path(tempfile.mkdtemp(dir=accounts.place))
    home.chmod(0o755)
    data = home / "data"
    agent = InstalledAgent(data)
    try:
        path = str(data / "control.sock")
        wait_for(lambda: os.path.exists(path) and _ping(path), timeout=120, what="the agent's control socket")
        data.chmod(data.stat().st_mode | 0o005)  # reachable, as /run/weightwarden is for the installed service
        baseline = threads_and_descriptors(agent.process.pid)
        flooder, tally = flood(accounts, path)
        try:
            under = threads_and_descriptors(agent.process.pid)
            print(f"installed agent, flood of {FLOOD}: {tally['served']} served, {tally['refused']} refused; "
                  f"threads {baseline[0]} -> {under[0]}, descriptors {baseline[1]} -> {under[1]}")
            assert tally["served"] <= 8, tally
            # Margins for the agent's own threads and files that come and go meanwhile (the flood was +400 each).
            assert under[0] <= baseline[0] + 8, "the flood cost threads"
            assert under[1] <= baseline[1] + 8 + 16, "the flood cost more descriptors than nobody's share"
            assert _ping(path)
        finally:
            let_go(flooder)
    finally:
        assert agent.stop() == 0
        shutil.rmtree(home, ignore_errors=True)


def _ping(path: str) -> bool:
    try:
        return bool(request(path, {"op": "ping"}, timeout=5)["ok"])
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- time

def test_a_request_trickled_byte_by_byte_is_cut_off(accounts: Accounts, served: Served) -> None:
    """Was: each byte restarted a 10 s read timeout, so one byte every few seconds held a thread for ever."""
    trickler = accounts.nobody.client(accounts.client, served.path, "trickle")
    output, _ = trickler.communicate(timeout=150)
    seconds = float(output.strip())
    print(f"trickling client cut off after {seconds:.1f} s")
    assert seconds < 5 + 3


def test_an_idle_connection_is_closed(accounts: Accounts, served: Served) -> None:
    """(Held before the fix too: a 10 s read timeout.)"""
    idler = accounts.nobody.client(accounts.client, served.path, "idle")
    output, _ = idler.communicate(timeout=150)
    seconds = float(output.strip())
    print(f"idle client cut off after {seconds:.1f} s")
    assert seconds < 10 + 3


def test_stopping_never_waits_for_a_client_that_keeps_talking(accounts: Accounts, served: Served) -> None:
    """Was: stop() joined every handler thread, and a client pinging every 0.1 s kept its thread going."""
    chatty = accounts.nobody.client(accounts.client, served.path, "chatty")
    try:
        assert chatty.stdout is not None
        assert chatty.stdout.readline().strip() == "chatting"
        stopper = threading.Thread(target=served.server.stop, name="stop-under-test", daemon=True)
        started = time.monotonic()
        stopper.start()
        stopper.join(timeout=10)
        seconds = time.monotonic() - started
        print(f"stop with a chatty client: {seconds:.2f} s")
        assert not stopper.is_alive(), "stop() is waiting for the client"
        assert seconds < 3
        assert chatty.stdout.readline().strip() == "cut off"
    finally:
        let_go(chatty, kill=True)  # also releases a stop() that waits for it (the old code)


def test_the_installed_agent_stops_cleanly_while_a_client_keeps_talking(accounts: Accounts) -> None:
    """Was: SIGTERM left the agent waiting for the client: no agent-stopped record, no final signature, and
    systemd's SIGKILL after 90 s."""
    home = Path(tempfile.mkdtemp(dir=accounts.place))
    home.chmod(0o755)
    data = home / "data"
    agent = InstalledAgent(data)
    chatty: subprocess.Popen[str] | None = None
    try:
        path = str(data / "control.sock")
        wait_for(lambda: os.path.exists(path) and _ping(path), timeout=120, what="the agent's control socket")
        data.chmod(data.stat().st_mode | 0o005)
        chatty = accounts.nobody.client(accounts.client, path, "chatty")
        assert chatty.stdout is not None and chatty.stdout.readline().strip() == "chatting"
        started = time.monotonic()
        agent.process.send_signal(signal.SIGTERM)
        try:
            code = agent.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the agent was still running 30 s after SIGTERM with a client talking to it")
        seconds = time.monotonic() - started
        print(f"installed agent stopped in {seconds:.2f} s with a client talking to it")
        assert code == 0
        events = subprocess.run([WEIGHTWARDEN, "events", "--json", "--mode", "system"], env=agent.env,
                                capture_output=True, text=True, timeout=60)
        stopped = [e for e in map(json.loads, events.stdout.splitlines()) if e.get("rule") == "agent-stopped"
                   or e.get("action") == "agent-stopped" or (e.get("event") or {}).get("action") == "agent-stopped"]
        assert stopped, events.stdout[-2000:]
        assert "checkpoint" in json.dumps(stopped[-1]), stopped[-1]  # the final signature
    finally:
        if chatty is not None:
            let_go(chatty, kill=True)
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- malformed

NESTED_ARRAYS = b"[" * 20_000 + b"]" * 20_000  # 40 kB: within the size limit, far beyond the recursion limit
NESTED_OBJECTS = b'{"op": "ping", "x": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
MALFORMED: dict[str, bytes] = {
    "nested arrays": NESTED_ARRAYS,
    "nested objects": NESTED_OBJECTS,
    "oversized": b'{"op": "ping", "x": "' + b"a" * (70 * 1024) + b'"}',
    "not UTF-8": b'{"op": "justify", "alert_id": "\xff\xfe", "text": "x"}',
    "lone surrogate": b'{"op": "justify", "alert_id": "\\ud800", "text": "x"}',
    "op not a string": b'{"op": ["ping"]}',
    "not an object": b"[1, 2]",
    "alert_id an object": b'{"op": "justify", "alert_id": {"x": 1}, "text": "x"}',
    "text an array": b'{"op": "justify", "alert_id": "A", "text": ["x"]}',
    "NaN": b'{"op": "ping", "x": NaN}',
    "empty line": b"",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_every_malformed_request_is_answered_with_an_error(accounts: Accounts, served: Served, name: str) -> None:
    """Was: deeply nested JSON raised RecursionError in the handler thread and the client got no answer; a
    lone surrogate reached SQLite ("internal error"); a text that was not a string was silently dropped."""
    reply, after = accounts.nobody.ask(accounts.client, served.path, MALFORMED[name], {"op": "ping"})
    assert reply != "closed", f"{name}: no answer"
    assert reply["ok"] is False and reply["error"], reply
    assert not reply["error"].startswith("internal error"), reply
    print(f"{name}: {reply['error']}")
    assert after["ok"], after  # and the socket still serves (a new connection after an oversized line)


# ---------------------------------------------------------------------------------------------- who may ask

def test_destinations_are_listed_and_tested_for_admins_only(accounts: Accounts, served: Served) -> None:
    """Was: any local user could list the SIEM hosts, user names and token paths, and send test records."""
    values = {"type": "file", "path": str(Path(served.path).parent / "out.jsonl")}
    assert request(served.path, {"op": "forward-set", "name": "local", "values": values})["ok"]
    listing, test = accounts.nobody.ask(accounts.client, served.path, {"op": "forward-list"},
                                        {"op": "sync-test", "destination": "local"})
    for reply in (listing, test):
        assert not reply["ok"] and "needs an admin" in reply["error"], reply
        assert "out.jsonl" not in json.dumps(reply)
    listing, test = accounts.admin.ask(accounts.client, served.path, {"op": "forward-list"},
                                       {"op": "sync-test", "destination": "local"})
    assert listing["ok"] and [d["name"] for d in listing["destinations"]] == ["local"], listing
    assert test["ok"], test


# ---------------------------------------------------------------------------------------------- secrets

class _Capture(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_POST(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"text": "Success", "code": 0, "ackId": 0}')

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def attacker_listener() -> Iterator[tuple[str, list[str]]]:
    """A plain-http receiver the admin controls: what reaches it is theirs."""
    seen: list[str] = []
    handler = type("Capture", (_Capture,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="attacker-listener")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_an_admin_cannot_have_roots_secret_sent_to_them(accounts: Accounts, served: Served,
                                                         attacker_listener: tuple[str, list[str]]) -> None:
    """Was: forward-set accepted any absolute token_file, which the agent (root) read and sent as a header to
    the admin's http:// URL: `sync-test` delivered root's file to the admin's listener."""
    url, seen = attacker_listener
    secret = Path(served.path).parent / "root-only-secret"
    secret.write_text("ROOT-SECRET-7d1f\n")
    secret.chmod(0o600)
    values = {"type": "hec", "url": url, "token_file": str(secret)}
    reply, test = accounts.admin.ask(accounts.client, served.path, {"op": "forward-set", "name": "x", "values": values},
                                     {"op": "sync-test", "destination": "x"})
    print(f"refused: {reply.get('error')}")
    assert not any("ROOT-SECRET" in header for header in seen), f"root's secret reached the admin: {seen}"
    assert not reply["ok"], reply
    assert "/etc/weightwarden" in reply["error"] and "plain http" in reply["error"], reply
    assert not test["ok"], test
    # Over https too the file is refused: it is not under /etc/weightwarden.
    https = {**values, "url": url.replace("http://", "https://")}
    (reply,) = accounts.admin.ask(accounts.client, served.path, {"op": "forward-set", "name": "x", "values": https})
    assert not reply["ok"] and "is not under /etc/weightwarden" in reply["error"], reply


@pytest.fixture
def etc_weightwarden() -> Iterator[Path]:
    """/etc/weightwarden as the package makes it (created for the test if missing, then removed)."""
    place = Path("/etc/weightwarden")
    made = not place.exists()
    if made:
        place.mkdir(mode=0o750)
    try:
        yield place
    finally:
        if made:
            shutil.rmtree(place, ignore_errors=True)


def test_secret_files_come_only_from_roots_own_place(accounts: Accounts, served: Served,
                                                     etc_weightwarden: Path) -> None:
    tag = secrets.token_hex(3)
    good = etc_weightwarden / f"test-{tag}.token"
    loose = etc_weightwarden / f"test-{tag}-loose.token"
    owned = etc_weightwarden / f"test-{tag}-owned.token"
    link = etc_weightwarden / f"test-{tag}-link.token"
    try:
        for path in (good, loose, owned):
            path.write_text("token\n")
            path.chmod(0o600)
        loose.chmod(0o660)
        os.chown(owned, accounts.admin.uid, accounts.admin.gid)
        link.symlink_to("/etc/shadow")
        base = {"type": "hec", "url": "https://127.0.0.1:1"}
        expected = {good: "", loose: "writable by its group or others", owned: "not root",
                    link: "resolves to /etc/shadow"}
        for path, problem in expected.items():
            values = {**base, "token_file": str(path)}
            (reply,) = accounts.admin.ask(accounts.client, served.path,
                                          {"op": "forward-set", "name": "h", "values": values})
            if problem:
                assert not reply["ok"] and problem in reply["error"], reply
            else:
                assert reply["ok"], reply
        inline = {"type": "hec", "url": "http://127.0.0.1:1", "token": "t"}
        (reply,) = accounts.admin.ask(accounts.client, served.path,
                                      {"op": "forward-set", "name": "h", "values": inline})
        assert not reply["ok"] and "never sent over plain http" in reply["error"], reply
    finally:
        for path in (good, loose, owned, link):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def test_a_stored_secret_does_not_follow_a_new_url(accounts: Accounts, served: Served) -> None:
    """The app never shows a stored token, and an edit that leaves it out keeps it: it must not be kept when
    the admin points the destination at another receiver (theirs)."""
    stored = {"type": "hec", "url": "https://siem.example.org:8088", "token": "org-hec-token"}
    assert request(served.path, {"op": "forward-set", "name": "splunk", "values": stored})["ok"]
    for url in ("https://127.0.0.1:8088", "http://127.0.0.1:8088"):
        (reply,) = accounts.admin.ask(accounts.client, served.path,
                                      {"op": "forward-set", "name": "splunk", "values": {"type": "hec", "url": url}})
        assert not reply["ok"], reply
    listing = request(served.path, {"op": "forward-list"})
    assert [d["values"]["url"] for d in listing["destinations"]] == ["https://siem.example.org:8088"]
