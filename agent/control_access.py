"""The control socket's access ops: requests, approvals, refusals and revokes (docs/access.md).

    {"op": "access-request", "model": "llama", "program": "/usr/bin/python3.11", "justification": "...",
     "hours": 8}                                                      anyone: for themselves
    {"op": "access-list"}                  admins: every pending request and active grant; others: their own
    {"op": "access-grant", "request": "ID", "hours": 8}              admins: approve a pending request
    {"op": "access-grant", "user": "ana", "model": "llama", "program": "...", "hours": 8, "justification": "..."}
    {"op": "access-refuse", "request": "ID", "note": "..."}          admins
    {"op": "access-revoke", "grant": "ID"}                           admins

Who asks is the kernel's word (SO_PEERCRED, agent/control.py): a request is filed for the caller's uid,
an approval names the caller as approver. The files and their records are agent/access/grants.py's; this
module only checks and bounds what a caller sent. Grants need root (the agent of an installed system).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from weightwarden.agent.access import grants
from weightwarden.agent.events import Event

if TYPE_CHECKING:
    from weightwarden.agent.control import Peer

ADMIN_ACCESS_OPS = frozenset({"access-grant", "access-refuse", "access-revoke"})
ANYONE_ACCESS_OPS = frozenset({"access-request", "access-list"})
DEFAULT_HOURS = grants.DEFAULT_SECONDS / 3600
MAX_HOURS = 7 * 24  # longer than a week is a policy change, not a grant
MAX_MODEL_CHARS = 512
MAX_PROGRAM_CHARS = 4096  # PATH_MAX
MAX_JUSTIFICATION_CHARS = 1000
MAX_NOTE_CHARS = 1000
MAX_PENDING_PER_USER = 20  # each is a file in the agent's data dir and a chained record: no flooding either
_ID = re.compile(r"^[0-9a-f]{12}$")  # grants.py's ids: secrets.token_hex(6)
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$")
_SHA256_PROGRAM = re.compile(r"^sha256:[0-9a-fA-F]{64}$")


class Refused(ValueError):
    """A request the desk will not act on; the message is the error the caller reads."""


def clean_line(value: str) -> str:
    """One line of printable text: control characters (newlines too) and surrounding space removed."""
    return "".join(ch for ch in value if ch.isprintable()).strip()


def _text(request: dict[str, Any], key: str, limit: int, *, required: bool = False) -> str:
    value = request.get(key)
    if value is None or value == "":
        if required:
            raise Refused(f"{key} is required")
        return ""
    if not isinstance(value, str):
        raise Refused(f"{key} must be a string")
    text = clean_line(value)
    if len(text) > limit:
        raise Refused(f"{key} is longer than {limit} characters")
    if required and not text:
        raise Refused(f"{key} is required")
    return text


def _program(request: dict[str, Any]) -> str | None:
    program = _text(request, "program", MAX_PROGRAM_CHARS)
    if not program:
        return None
    if not (program.startswith("/") or _SHA256_PROGRAM.match(program)):
        raise Refused("program must be an absolute executable path or sha256:<64 hex>")
    return program.lower() if program.startswith("sha256:") else program


def _hours(request: dict[str, Any]) -> float:
    value = request.get("hours", DEFAULT_HOURS)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused("hours must be a number")
    if not 0 < value <= MAX_HOURS:
        raise Refused(f"hours must be more than 0 and at most {MAX_HOURS}")
    return float(value)


def _asked_hours(asked: grants.Request) -> float:
    """The time a request asked, within bounds: a request file a user dropped themselves says what it likes."""
    hours = asked.seconds / 3600
    if not math.isfinite(hours) or hours <= 0:
        return DEFAULT_HOURS
    return min(hours, MAX_HOURS)


def _id(request: dict[str, Any], key: str) -> str:
    value = _text(request, key, 64, required=True)
    if not _ID.match(value):
        raise Refused(f"{key} {value!r} is not an id (12 hex digits)")
    return value


def request_dict(item: grants.Request) -> dict[str, Any]:
    return {k: v for k, v in asdict(item).items() if k != "file"}


def grant_dict(item: grants.Grant, now: float) -> dict[str, Any]:
    return {**asdict(item), "seconds_left": max(0.0, item.expires_at - now)}


class AccessDesk:
    """Answers the access ops of one agent's data dir; `record` hands an event to the agent's pipeline."""

    def __init__(self, data_dir: str, record: Callable[[Event], None]) -> None:
        self.data_dir = data_dir
        self.record = record

    def handle(self, peer: Peer, op: str, request: dict[str, Any], admin: bool) -> dict[str, Any]:
        try:
            if op == "access-request":
                return self._request(peer, request)
            if op == "access-list":
                return self._list(peer, admin)
            if op == "access-grant":
                return self._grant(peer, request)
            if op == "access-refuse":
                return self._refuse(peer, request)
            if op == "access-revoke":
                return self._revoke(peer, request)
        except Refused as error:
            return {"ok": False, "error": str(error)}
        except PermissionError as error:  # a user-mode agent is not root: it cannot write grants
            return {"ok": False, "error": f"{error} (the agent runs as uid {os.geteuid()})"}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _request(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        model = _text(request, "model", MAX_MODEL_CHARS, required=True)
        program = _program(request)
        justification = _text(request, "justification", MAX_JUSTIFICATION_CHARS, required=True)
        hours = _hours(request)
        if sum(r.uid == peer.uid for r in grants.pending_requests(self.data_dir)) >= MAX_PENDING_PER_USER:
            raise Refused(f"you have {MAX_PENDING_PER_USER} requests waiting for an admin; ask again once they "
                          "are answered")
        try:
            made = grants.request_for(self.data_dir, peer.uid, peer.gid, model, program, justification, hours * 3600)
        except ValueError as error:
            raise Refused(str(error)) from None
        self.record(grants.request_event(made))
        return {"ok": True, "request": request_dict(made)}

    def _list(self, peer: Peer, admin: bool) -> dict[str, Any]:
        now = time.time()
        pending = sorted(grants.pending_requests(self.data_dir), key=lambda r: r.time)  # oldest waiting first
        active = grants.GrantBook(self.data_dir).active(now)
        if not admin:
            pending = [r for r in pending if r.uid == peer.uid]
            active = tuple(g for g in active if g.uid == peer.uid)
        return {"ok": True, "admin": admin, "requests": [request_dict(r) for r in pending],
                "grants": [grant_dict(g, now) for g in active]}

    def _grant(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        book = grants.GrantBook(self.data_dir)
        if request.get("request") not in (None, ""):
            request_id = _id(request, "request")
            asked = grants.find_request(self.data_dir, request_id)
            if asked is None:
                raise Refused(f"no pending request {request_id}")
            hours = _hours(request) if "hours" in request else _asked_hours(asked)
            user, model, program, why = asked.user, asked.model, asked.program, asked.justification
        else:
            request_id = None
            user = _text(request, "user", 32, required=True)
            if not _USER.match(user):
                raise Refused(f"user {user!r} is not a user name")
            model = _text(request, "model", MAX_MODEL_CHARS, required=True)
            program = _program(request)
            why = _text(request, "justification", MAX_JUSTIFICATION_CHARS)
            hours = _hours(request)
        try:
            made = book.grant(user, model, program, hours * 3600, why, granted_by=peer.uid, request_id=request_id)
        except ValueError as error:  # no such user
            raise Refused(str(error)) from None
        return {"ok": True, "grant": grant_dict(made, time.time())}

    def _refuse(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        request_id = _id(request, "request")
        note = _text(request, "note", MAX_NOTE_CHARS)
        try:
            gone = grants.refuse(self.data_dir, request_id, note, peer.uid)
        except KeyError:
            raise Refused(f"no pending request {request_id}") from None
        return {"ok": True, "request": request_dict(gone)}

    def _revoke(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        grant_id = _id(request, "grant")
        try:
            gone = grants.GrantBook(self.data_dir).revoke(grant_id, revoked_by=peer.uid)
        except KeyError:
            raise Refused(f"no grant {grant_id}") from None
        return {"ok": True, "grant": asdict(gone)}

