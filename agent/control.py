"""The agent's local control socket: how the app (or any local tool) asks the agent to act.

A Unix stream socket in the data dir; one JSON object per line each way. The caller is identified by
the kernel (SO_PEERCRED), never by anything it claims. Anyone may add a justification, ask for a scan
or ping; acknowledge, resolve, false-positive, reopen and changing SIEM destinations are for admins:
root, members of `[agent] admin_group`, and (user mode only) the user the agent runs as, since it is
their own agent.
The agent applies a request by recording it through the store; the app never writes the database.

    {"op": "ping"}
    {"op": "justify", "alert_id": "...", "text": "uploaded to our org's hub namespace"}
    {"op": "acknowledge" | "resolve" | "false-positive" | "reopen", "alert_id": "...", "text": "optional note"}
    {"op": "scan-now"}
    {"op": "sync-test", "destination": "NAME"}   one live test record to a [forward.NAME] destination
    {"op": "forward-list"}                        the destinations forwarded to (secrets left out)
    {"op": "my-alerts"}                           the newest alerts about the caller's own processes
    {"op": "forward-set", "name": "NAME", "values": {"type": "syslog", ...}}     admins: add or replace one
    {"op": "forward-remove", "name": "NAME"}                                      admins: remove one
        (both checked by the config schema, kept in the data dir's drop-in, applied live: forward/managed.py)
  -> {"ok": true, ...} or {"ok": false, "error": "why"}
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import socketserver
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from weightwarden.agent import __version__
from weightwarden.agent.config import Config, ForwardDestination
from weightwarden.agent.paths import SYSTEM_DATA_DIR
from weightwarden.agent.store import Store

if TYPE_CHECKING:
    from weightwarden.agent.forward.managed import ManagedDestinations

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST_BYTES = 64 * 1024
MAX_TEXT_CHARS = 4000
ADMIN_OPS = frozenset({"acknowledge", "resolve", "false-positive", "reopen", "forward-set", "forward-remove"})
ANYONE_OPS = frozenset({"ping", "justify", "scan-now", "sync-test", "forward-list", "my-alerts"})
MY_ALERTS = 500  # "my-alerts": the newest alerts about the caller's own processes, for a non-admin's app
SCAN_NOW_INTERVAL = 10.0  # seconds between scans anyone may trigger


class ControlError(OSError):
    """The agent could not be reached, or it refused the request (message says why)."""


# The system data dir is 0750 root:weightwarden-admin, so a socket inside it is out of every other user's
# reach; the service's RuntimeDirectory (/run/weightwarden, 0755) is where any desktop user can connect.
SYSTEM_RUNTIME_DIR = "/run/weightwarden"


def socket_path(data_dir: str) -> str:
    if os.path.abspath(data_dir) == SYSTEM_DATA_DIR and os.path.isdir(SYSTEM_RUNTIME_DIR):
        return os.path.join(SYSTEM_RUNTIME_DIR, SOCKET_NAME)
    return os.path.join(data_dir, SOCKET_NAME)


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)


def peer_of(sock: socket.socket) -> Peer:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return Peer(pid, uid, gid)


@dataclass(frozen=True)
class Authorizer:
    admin_group: str = ""
    owner_uid: int | None = None  # user mode: the agent's own user administers it

    def is_admin(self, peer: Peer) -> bool:
        if peer.uid == 0 or (self.owner_uid is not None and peer.uid == self.owner_uid):
            return True
        if not self.admin_group:
            return False
        try:
            group = grp.getgrnam(self.admin_group)
        except KeyError:
            return False
        return peer.gid == group.gr_gid or peer.user in group.gr_mem

    def allowed(self, peer: Peer, op: str) -> bool:
        return op in ANYONE_OPS or (op in ADMIN_OPS and self.is_admin(peer))


def _clean_text(value: object) -> str:
    if not isinstance(value, str):
        return ""
    text = "".join(ch for ch in value if ch in "\n\t" or ch.isprintable())
    return text.strip()[:MAX_TEXT_CHARS]


class ControlServer:
    """Serves the control socket on its own threads until stop()."""

    def __init__(self, path: str, store: Store, authorizer: Authorizer, *,
                 on_scan_now: Callable[[], None] | None = None,
                 on_review: Callable[[dict[str, Any]], None] | None = None,
                 forwarding: ManagedDestinations | None = None,
                 info: dict[str, Any] | None = None, world_accessible: bool = False) -> None:
        self.path = path
        self.store = store
        self.authorizer = authorizer
        self.on_scan_now = on_scan_now
        self.on_review = on_review
        self.forwarding = forwarding
        self._last_test = float("-inf")
        self.info = info or {}
        self.world_accessible = world_accessible
        self.requests = 0
        self.refused = 0
        self._last_scan = float("-inf")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        _remove_stale_socket(self.path)
        server = _Server(self.path, _Handler)
        server.control = self
        # Who may connect is decided per request by peer uid; the file mode only decides who can try.
        os.chmod(self.path, 0o666 if self.world_accessible else 0o600)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="ww-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = None

    # ------------------------------------------------------------------ requests

    def handle(self, peer: Peer, request: object) -> dict[str, Any]:
        self.requests += 1
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"ok": False, "error": "a request is a JSON object with an 'op'"}
        op = request["op"]
        if op not in ADMIN_OPS | ANYONE_OPS:
            return {"ok": False, "error": f"unknown op {op!r}"}
        if not self.authorizer.allowed(peer, op):
            self.refused += 1
            log.warning("control: %s (uid %d, pid %d) may not %s", peer.user, peer.uid, peer.pid, op)
            return {"ok": False, "error": f"{op} needs an admin (root or the admin group); you are {peer.user}"}
        if op == "ping":
            return {"ok": True, "agent": self.info,
                    "peer": {"uid": peer.uid, "user": peer.user, "admin": self.authorizer.is_admin(peer)}}
        if op == "scan-now":
            now = time.monotonic()
            if now - self._last_scan < SCAN_NOW_INTERVAL:
                return {"ok": False, "error": "a scan was requested moments ago"}
            self._last_scan = now
            if self.on_scan_now is not None:
                self.on_scan_now()
            return {"ok": True}
        if op == "sync-test":
            return self._sync_test(request.get("destination"))
        if op == "my-alerts":  # the caller's own alerts: who they are comes from the kernel, not the request
            rows = self.store.review.alerts_of_user(peer.user, MY_ALERTS)
            return {"ok": True, "alerts": [{"id": r.id, "time": r.time, "severity": r.severity, "rule": r.rule,
                                            "title": r.title, "model": r.model, "status": r.status,
                                            "message": r.record.get("message", "")} for r in rows]}
        if op.startswith("forward-"):
            return self._forward(peer, op, request)
        alert_id = request.get("alert_id")
        if not isinstance(alert_id, str) or not alert_id:
            return {"ok": False, "error": "alert_id is required"}
        text = _clean_text(request.get("text"))
        if op == "justify" and not text:
            return {"ok": False, "error": "a justification needs text"}
        try:
            review = self.store.review.add_review(alert_id, "justify" if op == "justify" else op,
                                                  uid=peer.uid, user=peer.user, text=text)
        except KeyError:
            return {"ok": False, "error": f"no alert {alert_id}"}
        log.info("control: %s by %s (uid %d) on alert %s", op, peer.user, peer.uid, alert_id)
        if self.on_review is not None:
            self.on_review(review)
        return {"ok": True, "review": review}


    def _sync_test(self, destination: object) -> dict[str, Any]:
        if self.forwarding is None:
            return {"ok": False, "error": "this agent does not forward"}
        if not isinstance(destination, str) or not destination:
            return {"ok": False, "error": "destination is required"}
        now = time.monotonic()
        if now - self._last_test < 2.0:
            return {"ok": False, "error": "a test was sent moments ago"}
        self._last_test = now
        return self.forwarding.test(destination)

    def _forward(self, peer: Peer, op: str, request: dict[str, Any]) -> dict[str, Any]:
        if self.forwarding is None:
            return {"ok": False, "error": "this agent does not forward"}
        if op == "forward-list":
            return {"ok": True, "destinations": self.forwarding.describe(), "file": self.forwarding.file}
        name = request.get("name")
        if op == "forward-set":
            reply = self.forwarding.set(name, request.get("values"))
        else:
            reply = self.forwarding.remove(name)
        if reply["ok"]:
            log.warning("control: %s %s by %s (uid %d): %s", op, name, peer.user, peer.uid, reply["changes"])
        return reply


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = False
    block_on_close = True
    control: ControlServer


class _Handler(socketserver.StreamRequestHandler):
    timeout = 10  # a client that stops talking does not hold a thread forever

    def handle(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        peer = peer_of(self.request)
        while True:
            try:
                line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
            except (TimeoutError, OSError):
                return
            if not line:
                return
            if len(line) > MAX_REQUEST_BYTES:
                self._reply({"ok": False, "error": "request too large"})
                return
            try:
                request = json.loads(line)
            except ValueError:
                reply: dict[str, Any] = {"ok": False, "error": "not JSON"}
            else:
                try:
                    reply = server.control.handle(peer, request)
                except Exception as error:  # one bad request never takes the socket down
                    log.exception("control request failed")
                    reply = {"ok": False, "error": f"internal error: {error}"}
            if not self._reply(reply):
                return

    def _reply(self, reply: dict[str, Any]) -> bool:
        try:
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()
        except OSError:
            return False
        return True


def for_agent(config: Config, store: Store, *, on_scan_now: Callable[[], None],
              on_review: Callable[[dict[str, Any]], None],
              apply_destinations: Callable[[tuple[ForwardDestination, ...]], dict[str, str]] | None = None
              ) -> ControlServer:
    """The control server an agent with this config serves (socket in its data dir)."""
    from weightwarden.agent.forward.managed import ManagedDestinations  # the forwarding stack, agent only

    owner = os.geteuid() if config.mode == "user" else None
    info = {"mode": config.mode, "pid": os.getpid(), "version": __version__, "name": config.agent_name,
            "database": config.database_path}
    return ControlServer(socket_path(config.data_dir), store,
                         Authorizer(admin_group=config.agent.admin_group, owner_uid=owner),
                         on_scan_now=on_scan_now, on_review=on_review, info=info,
                         forwarding=ManagedDestinations(config, apply_destinations or _not_applied),
                         world_accessible=config.mode == "system")


def _not_applied(destinations: tuple[ForwardDestination, ...]) -> dict[str, str]:
    return {d.name: "saved; applied at the next start" for d in destinations}


def _remove_stale_socket(path: str) -> None:
    """A socket left by a crashed agent is removed; a live one means another agent owns this data dir."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise ControlError(f"{path}: another agent is already serving this data directory")


def request(path: str, payload: dict[str, Any], *, timeout: float = 5.0) -> dict[str, Any]:
    """Send one request and return the agent's reply; ControlError when the agent is not reachable."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as error:
        raise ControlError(f"agent not reachable at {path}: {error.strerror or error}") from None
    finally:
        sock.close()
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"agent at {path} sent no valid reply") from None
    if not isinstance(reply, dict):
        raise ControlError(f"agent at {path} sent no valid reply")
    return reply
