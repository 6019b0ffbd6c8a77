"""The agent's local control socket: how the app (or any local tool) asks the agent to act.

A Unix stream socket in the data dir; one JSON object per line each way. The caller is identified by
the kernel (SO_PEERCRED), never by anything it claims. Anyone may add a justification, ask for a scan,
ping, or request access to a model for themselves; acknowledge, resolve, false-positive, reopen, listing,
testing or changing SIEM destinations, and approving, refusing or revoking access are for admins:
root, members of `[agent] admin_group`, and (user mode only) the user the agent runs as, since it is
their own agent.
The agent applies a request by recording it through the store; the app never writes the database.

    {"op": "ping"}
    {"op": "justify", "alert_id": "...", "text": "uploaded to our org's hub namespace"}
    {"op": "acknowledge" | "resolve" | "false-positive" | "reopen", "alert_id": "...", "text": "optional note"}
    {"op": "scan-now"}
    {"op": "sync-test", "destination": "NAME"}   admins: one live test record to a [forward.NAME] destination
    {"op": "forward-list"}                        admins: the destinations forwarded to (secrets left out)
    {"op": "my-alerts"}                           the newest alerts about the caller's own processes
    {"op": "forward-set", "name": "NAME", "values": {"type": "syslog", ...}}     admins: add or replace one
    {"op": "forward-remove", "name": "NAME"}                                      admins: remove one
    {"op": "record-audit", "summary": {...}}      admins: an audit's summary, recorded as an audit-summary
                                                  event (`weightwarden audit --record`, agent/audit/record.py)
    {"op": "unseal", "path": "/abs/path"} | {"op": "unseal", "job": "ID"}
                                                  anyone: unseal a sealed file if the access policy allows the
                                                  caller; a job, followed by its id (agent/seal/unseal_service.py)
        (both checked by the config schema, kept in the data dir's drop-in, applied live: forward/managed.py)
    {"op": "access-request" | "access-list"}     anyone (a request is the caller's own; a non-admin lists
                                                  only their own requests and grants)
    {"op": "access-grant" | "access-refuse" | "access-revoke"}   admins: fields in agent/control_access.py
  -> {"ok": true, ...} or {"ok": false, "error": "why"}

Every request line gets a reply line, a malformed one (not UTF-8, not JSON, nested deeper than MAX_DEPTH,
a lone surrogate, a field of the wrong type, over 64 KiB) an error saying why. Connections, their caps and
deadlines: control_connections.py.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import re
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from weightwarden.agent import __version__
from weightwarden.agent.config import Config, ForwardDestination
from weightwarden.agent.control_access import ADMIN_ACCESS_OPS, ANYONE_ACCESS_OPS, AccessDesk
from weightwarden.agent.control_connections import DEFAULT_LIMITS, ConnectionServer, Limits
from weightwarden.agent.events import Event
from weightwarden.agent.paths import SYSTEM_DATA_DIR
from weightwarden.agent.store import Store
from weightwarden.agent.store.review_queries import AlertRow

if TYPE_CHECKING:
    from weightwarden.agent.forward.managed import ManagedDestinations

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_TEXT_CHARS = 4000
# Destinations are admins' business: their hosts, users and file paths are not every local user's to read, and
# a live test writes a record into the SIEM.
ADMIN_OPS = frozenset({"acknowledge", "resolve", "false-positive", "reopen", "forward-set", "forward-remove",
                       "forward-list", "sync-test", "record-audit", *ADMIN_ACCESS_OPS})
ANYONE_OPS = frozenset({"ping", "justify", "scan-now", "my-alerts", "unseal", *ANYONE_ACCESS_OPS})
MAX_DEPTH = 8  # nesting of a request's JSON; the deepest real one (forward-set) has 2
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


def _clean_text(value: str) -> str:
    text = "".join(ch for ch in value if ch in "\n\t" or ch.isprintable())
    return text.strip()[:MAX_TEXT_CHARS]


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def parse_request(line: bytes) -> tuple[object, str]:
    """A request line as JSON, or why it is not one; never more nesting than MAX_DEPTH, never invalid text."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"a request is UTF-8 text (invalid byte at offset {error.start})"
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRING.sub(b"", line)):  # brackets outside strings
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return None, f"request nested too deeply (more than {MAX_DEPTH} levels)"
    try:
        request = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None, "not JSON"
    if _has_invalid_text(request, MAX_DEPTH + 1):
        return None, "a request's text must be valid Unicode (it holds a lone surrogate)"
    return request, ""


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _has_invalid_text(value: object, depth: int) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth <= 0:
        return False
    if isinstance(value, dict):
        return any(_has_invalid_text(k, depth - 1) or _has_invalid_text(v, depth - 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_invalid_text(v, depth - 1) for v in value)
    return False


def _string(request: dict[str, Any], key: str) -> tuple[str, str]:
    """request[key] as text ("" when absent), or why it is not text."""
    value = request.get(key, "")
    if value is None:
        return "", ""
    if not isinstance(value, str):
        return "", f"{key} must be a string, got {_json_type(value)}"
    return value, ""


def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def _my_alert(row: AlertRow) -> dict[str, Any]:
    """One of the caller's own alerts: enough for the app to list it and to tell a refused open (which
    program, which file) without the database."""
    record = row.record
    process = record.get("process") or {}
    return {"id": row.id, "time": row.time, "severity": row.severity, "rule": row.rule, "title": row.title,
            "model": row.model, "status": row.status, "incident": row.incident, "message": record.get("message", ""),
            "paths": record.get("paths") or [],
            "process": {k: process.get(k) for k in ("pid", "name", "executable", "user")}}


def _error_line(reason: str) -> bytes:
    return json.dumps({"ok": False, "error": reason}).encode() + b"\n"


class ControlServer:
    """Serves the control socket on its own threads until stop()."""

    def __init__(self, path: str, store: Store, authorizer: Authorizer, *,
                 on_scan_now: Callable[[], None] | None = None,
                 on_review: Callable[[dict[str, Any]], None] | None = None,
                 on_audit: Callable[[object], None] | None = None,
                 on_unseal: Callable[[Peer, dict[str, Any]], dict[str, Any]] | None = None,
                 forwarding: ManagedDestinations | None = None, access: AccessDesk | None = None,
                 info: dict[str, Any] | None = None, world_accessible: bool = False,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.access = access  # requests and grants (agent/control_access.py)
        self.store = store
        self.authorizer = authorizer
        self.on_scan_now = on_scan_now
        self.on_review = on_review
        self.on_audit = on_audit  # raises ValueError for a summary that is not one
        self.on_unseal = on_unseal  # starts or reports on an unseal job; never waits for one
        self.forwarding = forwarding
        self._last_test = float("-inf")
        self.info = info or {}
        self.world_accessible = world_accessible
        self.requests = 0
        self.refused = 0
        self._last_scan = float("-inf")
        self._rate_lock = threading.Lock()
        self.limits = limits
        self._server: ConnectionServer | None = None

    def start(self) -> None:
        _remove_stale_socket(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            # Who may connect is decided per request by peer uid; the file mode only decides who can try.
            os.chmod(self.path, 0o666 if self.world_accessible else 0o600)
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        self._server = ConnectionServer(listener, self.answer, _error_line, peer_of, self.limits)
        self._server.start()

    def stop(self) -> None:
        """Stop serving at once: connections are closed where they stand, whatever their clients are doing."""
        if self._server is None:
            return
        self._server.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = None

    def snapshot(self) -> dict[str, int]:
        server = self._server
        return {"requests": self.requests, "refused": self.refused,
                "connections": server.connections() if server else 0,
                "refused_connections": server.refused_connections if server else 0,
                "timed_out": server.timed_out if server else 0}

    def answer(self, peer: Peer, line: bytes) -> bytes:
        """The reply line to one request line: every request is answered, a malformed one with why."""
        request, problem = parse_request(line)
        if problem:
            self.requests += 1
            reply: dict[str, Any] = {"ok": False, "error": problem}
        else:
            try:
                reply = self.handle(peer, request)
            except Exception as error:  # one bad request never takes the socket down
                log.exception("control request failed")
                reply = {"ok": False, "error": f"internal error: {type(error).__name__}"}
        try:
            return json.dumps(reply).encode() + b"\n"
        except (TypeError, ValueError) as error:
            log.error("control: reply to %s could not be encoded: %s", request, error)
            return _error_line(f"internal error: reply not encodable ({type(error).__name__})")

    # ------------------------------------------------------------------ requests

    def handle(self, peer: Peer, request: object) -> dict[str, Any]:
        self.requests += 1
        if not isinstance(request, dict):
            return {"ok": False, "error": f"a request is a JSON object with an 'op', got {_json_type(request)}"}
        if not isinstance(request.get("op"), str):
            return {"ok": False, "error": "a request is a JSON object with an 'op' (a string)"}
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
            with self._rate_lock:  # requests are answered on more than one thread
                now = time.monotonic()
                if now - self._last_scan < SCAN_NOW_INTERVAL:
                    return {"ok": False, "error": "a scan was requested moments ago"}
                self._last_scan = now
            if self.on_scan_now is not None:
                self.on_scan_now()
            return {"ok": True}
        if op == "sync-test":
            return self._sync_test(request)
        if op == "unseal":
            if self.on_unseal is None:
                return {"ok": False, "error": "this agent does not unseal"}
            return self.on_unseal(peer, request)
        if op == "my-alerts":  # the caller's own alerts: who they are comes from the kernel, not the request
            rows = self.store.review.alerts_of_user(peer.user, MY_ALERTS)
            return {"ok": True, "alerts": [_my_alert(r) for r in rows]}
        if op.startswith("forward-"):
            return self._forward(peer, op, request)
        if op.startswith("access-"):
            if self.access is None:
                return {"ok": False, "error": "this agent does not handle access requests"}
            reply: dict[str, Any] = self.access.handle(peer, op, request, self.authorizer.is_admin(peer))
            if reply["ok"] and op != "access-list":
                log.warning("control: %s by %s (uid %d)", op, peer.user, peer.uid)
            return reply
        if op == "record-audit":
            if self.on_audit is None:
                return {"ok": False, "error": "this agent does not record audits"}
            try:
                self.on_audit(request.get("summary"))
            except ValueError as error:
                return {"ok": False, "error": str(error)}
            log.info("control: audit summary recorded for %s (uid %d)", peer.user, peer.uid)
            return {"ok": True}
        alert_id, problem = _string(request, "alert_id")
        if problem or not alert_id:
            return {"ok": False, "error": problem or "alert_id is required"}
        text, problem = _string(request, "text")
        if problem:
            return {"ok": False, "error": problem}
        text = _clean_text(text)
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

    def _sync_test(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.forwarding is None:
            return {"ok": False, "error": "this agent does not forward"}
        destination, problem = _string(request, "destination")
        if problem or not destination:
            return {"ok": False, "error": problem or "destination is required"}
        with self._rate_lock:
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


def for_agent(config: Config, store: Store, *, on_scan_now: Callable[[], None],
              on_review: Callable[[dict[str, Any]], None],
              on_audit: Callable[[object], None] | None = None,
              on_access: Callable[[Event], None] | None = None,
              on_unseal: Callable[[Peer, dict[str, Any]], dict[str, Any]] | None = None,
              apply_destinations: Callable[[tuple[ForwardDestination, ...]], dict[str, str]] | None = None
              ) -> ControlServer:
    """The control server an agent with this config serves (socket in its data dir)."""
    from weightwarden.agent.forward.managed import ManagedDestinations  # the forwarding stack, agent only

    owner = os.geteuid() if config.mode == "user" else None
    info = {"mode": config.mode, "pid": os.getpid(), "version": __version__, "name": config.agent_name,
            "database": config.database_path}
    return ControlServer(socket_path(config.data_dir), store,
                         Authorizer(admin_group=config.agent.admin_group, owner_uid=owner),
                         on_scan_now=on_scan_now, on_review=on_review, on_audit=on_audit, on_unseal=on_unseal,
                         info=info,
                         access=AccessDesk(config.data_dir, on_access) if on_access is not None else None,
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
