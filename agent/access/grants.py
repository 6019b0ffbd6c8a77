"""Time-boxed access grants, users' requests for them, and break-glass, kept in the agent's data dir.

Layout under DATA_DIR/access/:
- grants.json: the grants, written (atomically) by root only; the decision refuses a file not owned by the
  agent's own uid, so a user cannot hand themselves a grant.
- requests/: a drop folder with mode 1733 (like /tmp): anyone may add a file, nobody but its owner (and root)
  may remove it. The requester is the file's owner as the kernel says (fstat), never what the file claims.
- break-glass: while its `until` is in the future, root's opens are allowed and each one is recorded.
- records.jsonl: the records of grants, revokes, expiries and break-glass, appended by root. No CLI command
  writes to the store while the agent owns it (the chain's sequence lives in the agent's Store), so these
  are pending records the agent ingests (`take_pending`) and writes through its store like any other; a
  request's own file is its pending record.

Expiry is judged at decision time (`GrantBook.active`); `sweep` removes expired grants and records their end.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from weightwarden.agent.access.policy import glob_match
from weightwarden.agent.events import Action, Category, Event

DEFAULT_SECONDS = 8 * 3600
# grants.json is read, changed and replaced whole: in the agent, the control socket's workers (grant, revoke)
# and the dispatcher (sweep) would otherwise lose each other's changes or share a temporary file.
_BOOK_LOCK = threading.RLock()


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    user: str
    uid: int
    model: str  # a model name or a path (glob) of a model file
    program: str | None  # an executable path, "sha256:HEX", or None for any program
    granted_by: int
    granted_at: float
    expires_at: float
    justification: str = ""

    def covers(self, uid: int, model_path: str, model_name: str | None, executable: str | None,
               executable_sha256: str | None) -> bool:
        if uid != self.uid:
            return False
        if not (self.model == model_name or glob_match(self.model)(model_path)):
            return False
        if self.program is None:
            return True
        if self.program.startswith("sha256:"):
            return executable_sha256 == self.program.removeprefix("sha256:").lower()
        return executable == self.program


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    uid: int  # the owner of the request file
    user: str
    model: str
    program: str | None
    justification: str
    seconds: float
    time: float
    file: str = field(default="", compare=False)


def access_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "access")


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class GrantBook:
    """The grants file of one data dir. Reading is cheap: the parsed grants are kept until the file changes."""

    def __init__(self, data_dir: str, *, trusted_owners: tuple[int, ...] | None = None) -> None:
        self.folder = access_dir(data_dir)
        self.path = os.path.join(self.folder, "grants.json")
        # Decisions trust only a file of the agent's own uid; a report shown to an admin also reads root's.
        self.trusted_owners = trusted_owners if trusted_owners is not None else (os.geteuid(),)
        self._seen: tuple[int, int, int] | None = None
        self._grants: tuple[Grant, ...] = ()

    def stamp(self) -> tuple[int, int, int] | None:
        """What identifies the file's current version (None: no file); a change means other grants."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def grants(self) -> tuple[Grant, ...]:
        """Every grant in the file (expired ones too); () when there is none or it is not trustworthy."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._seen, self._grants = None, ()
            return ()
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._seen:
            trusted = st.st_uid in self.trusted_owners and not st.st_mode & (stat.S_IWOTH | stat.S_IWGRP)
            self._grants = self._read() if trusted else ()
            self._seen = key
        return self._grants

    def active(self, now: float | None = None) -> tuple[Grant, ...]:
        now = time.time() if now is None else now
        return tuple(g for g in self.grants() if g.expires_at > now)

    def _read(self) -> tuple[Grant, ...]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                raw = json.load(handle)
            return tuple(Grant(**item) for item in raw.get("grants", []))
        except (OSError, ValueError, TypeError):
            return ()

    def _write(self, grants: Iterable[Grant]) -> None:
        os.makedirs(self.folder, mode=0o755, exist_ok=True)
        temporary = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"grants": [asdict(g) for g in grants]}, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def grant(self, user: str, model: str, program: str | None, seconds: float = DEFAULT_SECONDS,
              justification: str = "", now: float | None = None, *, granted_by: int | None = None,
              request_id: str | None = None) -> Grant:
        """Add a grant (root only: PermissionError otherwise) and record it. `granted_by`: the approver's uid
        when the agent grants for an admin of its control socket (else the caller, or the person behind sudo);
        `request_id`: the request it answers, named in the record."""
        _require_root("grant access")
        now = time.time() if now is None else now
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            raise ValueError(f"no such user {user!r}") from None
        approver = _admin_uid() if granted_by is None else granted_by
        made = Grant(secrets.token_hex(6), user, uid, model, program, approver, now, now + seconds, justification)
        with _BOOK_LOCK:
            self._write((*self.grants(), made))
        # the user's requests for this model are answered
        for item in pending_requests(os.path.dirname(self.folder)):
            if item.uid == uid and item.model == model:
                with contextlib.suppress(OSError):
                    os.unlink(item.file)
        _append_record(self.folder, Action.ACCESS_GRANTED,
                       f"{user} may open {model} with {program or 'any program'} for {seconds:.0f} s, "
                       f"granted by {_user(approver)}", made,
                       {"approver": {"uid": approver, "user": _user(approver)}, "request": request_id})
        return made

    def revoke(self, grant_id: str, *, revoked_by: int | None = None) -> Grant:
        _require_root("revoke access")
        with _BOOK_LOCK:
            found = next((g for g in self.grants() if g.id == grant_id), None)
            if found is None:
                raise KeyError(grant_id)
            self._write(g for g in self.grants() if g.id != grant_id)
        by = _admin_uid() if revoked_by is None else revoked_by
        _append_record(self.folder, Action.ACCESS_REVOKED,
                       f"grant {grant_id} for {found.user} revoked by {_user(by)}", found,
                       {"revoked_by": {"uid": by, "user": _user(by)}})
        return found

    def sweep(self, now: float | None = None) -> list[Grant]:
        """Remove expired grants and record their end (root: the agent, or an admin's command)."""
        now = time.time() if now is None else now
        with _BOOK_LOCK:
            expired = [g for g in self.grants() if g.expires_at <= now]
            if expired and os.geteuid() == 0:
                self._write(g for g in self.grants() if g.expires_at > now)
        if expired and os.geteuid() == 0:
            for grant in expired:
                _append_record(self.folder, Action.ACCESS_GRANT_EXPIRED,
                               f"grant {grant.id} for {grant.user} on {grant.model} expired", grant)
        return expired


def _admin_uid() -> int:
    """Who is granting: the person behind sudo when there is one (SUDO_UID), else the caller."""
    sudo = os.environ.get("SUDO_UID", "")
    return int(sudo) if sudo.isdigit() else os.getuid()


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PermissionError(f"only root can {what}")


# ----------------------------------------------------------------------------------------------- requests


def requests_dir(data_dir: str) -> str:
    return os.path.join(access_dir(data_dir), "requests")


def prepare_requests_dir(data_dir: str) -> str:
    """Create the drop folder (root: the agent or an admin command), sticky and writable by all."""
    folder = requests_dir(data_dir)
    os.makedirs(folder, exist_ok=True)
    os.chmod(access_dir(data_dir), 0o755)
    os.chmod(folder, 0o1733)
    return folder


def request(data_dir: str, model: str, program: str | None, justification: str,
            seconds: float = DEFAULT_SECONDS) -> Request:
    """File a request as the calling user; it waits for an admin's `access grant`."""
    folder = requests_dir(data_dir)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no request folder (the agent has not prepared it); ask an admin")
    return _file_request(folder, os.getuid(), None, model, program, justification, seconds)


def request_for(data_dir: str, uid: int, gid: int, model: str, program: str | None, justification: str,
                seconds: float = DEFAULT_SECONDS) -> Request:
    """File a request on behalf of `uid` (the agent, for a caller of its control socket identified by the
    kernel): the same file a user's own `access request` leaves, owned by them, so it is attributed, listed
    and answered the same way. The caller records `request_event(made)` at once (an admin may answer before
    the next `take_pending`), so the file is marked as recorded before it exists: never recorded twice."""
    folder = requests_dir(data_dir)
    if not os.path.isdir(folder):  # user mode: nobody prepared it, and only the agent writes to it
        os.makedirs(folder, mode=0o700, exist_ok=True)
    return _file_request(folder, uid, gid if uid != os.geteuid() else None, model, program, justification, seconds,
                         mark=_recorded_dir(data_dir))


def _file_request(folder: str, uid: int, chown_gid: int | None, model: str, program: str | None,
                  justification: str, seconds: float, mark: str | None = None) -> Request:
    if not justification.strip():
        raise ValueError("a request needs a justification")
    made = Request(secrets.token_hex(6), uid, _user(uid), model, program, justification.strip(), seconds, time.time())
    name = f"{made.uid}-{made.id}.json"
    path = os.path.join(folder, name)
    if mark is not None:
        open(os.path.join(mark, name), "w").close()
    # O_EXCL and O_NOFOLLOW: in a folder anyone may write to, a name planted in advance is never followed
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        if chown_gid is not None:
            os.fchown(fd, uid, chown_gid)  # the requester owns it: that is who it is attributed to
    except OSError:
        os.close(fd)
        os.unlink(path)
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({k: v for k, v in asdict(made).items() if k != "file"}, handle)
    return replace(made, file=path)


def find_request(data_dir: str, request_id: str) -> Request | None:
    return next((r for r in pending_requests(data_dir) if r.id == request_id), None)


def refuse(data_dir: str, request_id: str, note: str, refused_by: int) -> Request:
    """Turn a pending request down (root only): its file goes, and the refusal with the admin's note is a
    record. KeyError when no such request waits."""
    _require_root("refuse a request")
    found = find_request(data_dir, request_id)
    if found is None:
        raise KeyError(request_id)
    try:
        os.unlink(found.file)
    except FileNotFoundError:  # answered meanwhile (granted, refused by another admin)
        raise KeyError(request_id) from None
    _append_record(access_dir(data_dir), Action.ACCESS_REFUSED,
                   f"request {found.id} of {found.user} for {found.model} refused by {_user(refused_by)}"
                   + (f": {note}" if note else ""), None,
                   {"request": {k: v for k, v in asdict(found).items() if k != "file"},
                    "refused_by": {"uid": refused_by, "user": _user(refused_by)}, "note": note},
                   model=found.model)
    return found


def pending_requests(data_dir: str) -> list[Request]:
    """The requests waiting, each attributed to its file's owner (whatever the file says)."""
    folder = requests_dir(data_dir)
    found = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_size > 65536:
                    continue
                raw = json.loads(os.read(fd, 65536))
                found.append(Request(str(raw["id"]), st.st_uid, _user(st.st_uid), str(raw["model"]),
                                     raw.get("program"), str(raw["justification"]), float(raw["seconds"]),
                                     float(raw["time"]), path))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            finally:
                os.close(fd)
    return found


def request_event(item: Request) -> Event:
    return Event(Action.ACCESS_REQUESTED, Category.HOST,
                 f"{item.user} asks to open {item.model} with {item.program or 'any program'}: {item.justification}",
                 model=item.model, details={"request": {k: v for k, v in asdict(item).items() if k != "file"}})


# ------------------------------------------------------------------------------------------- break-glass


def break_glass(data_dir: str, seconds: float, reason: str) -> float:
    """Open break-glass for `seconds` (root only); returns when it ends."""
    _require_root("break the glass")
    if not reason.strip():
        raise ValueError("break-glass needs a reason")
    folder = access_dir(data_dir)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    until = time.time() + seconds
    path = os.path.join(folder, "break-glass")
    fd = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"until": until, "reason": reason.strip(), "by": os.getuid()}, handle)
    os.replace(f"{path}.tmp", path)
    _append_record(folder, Action.ACCESS_BREAK_GLASS, f"break-glass opened for {seconds:.0f} s: {reason.strip()}",
                   None, {"until": until, "reason": reason.strip()})
    return until


class BreakGlass:
    """Whether break-glass is open now: the file is re-read only when it changes."""

    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(access_dir(data_dir), "break-glass")
        self._seen: tuple[int, int] | None = None
        self._until = 0.0

    def stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def open_until(self) -> float:
        try:
            st = os.stat(self.path)
        except OSError:
            return 0.0
        key = (st.st_ino, st.st_mtime_ns)
        if key != self._seen:
            self._seen = key
            self._until = 0.0
            if st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
                with contextlib.suppress(OSError, ValueError, TypeError, KeyError), \
                        open(self.path, encoding="utf-8") as handle:
                    self._until = float(json.load(handle)["until"])
        return self._until


# ------------------------------------------------------------------------------------------ pending records


def _append_record(folder: str, action: Action, message: str, grant: Grant | None,
                   details: dict[str, Any] | None = None, *, model: str | None = None) -> None:
    event = Event(action, Category.HOST, message, model=grant.model if grant else model,
                  details={**({"grant": asdict(grant)} if grant else {}), **(details or {})})
    line = json.dumps({"id": event.id, "time": event.time.isoformat(), "action": str(action), "message": message,
                       "model": event.model, "details": event.details})
    fd = os.open(os.path.join(folder, "records.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


def _recorded_dir(data_dir: str) -> str:
    """Markers of the request files already recorded, by file name (the agent's own, 0700)."""
    seen = os.path.join(access_dir(data_dir), "requests-recorded")
    os.makedirs(seen, mode=0o700, exist_ok=True)
    return seen


def take_pending(data_dir: str) -> list[Event]:
    """The pending records (grants, revokes, expiries, break-glass, then new requests) as Events, removed from
    their files: the agent writes them through its store."""
    from datetime import datetime

    folder = access_dir(data_dir)
    if not os.path.isdir(folder):
        return []
    events: list[Event] = []
    path = os.path.join(folder, "records.jsonl")
    taking = f"{path}.taking"
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, taking)
    with contextlib.suppress(FileNotFoundError):
        with open(taking, encoding="utf-8") as handle:
            for line in handle:
                with contextlib.suppress(ValueError, KeyError):
                    raw = json.loads(line)
                    events.append(Event(Action(raw["action"]), Category.HOST, raw["message"], model=raw["model"],
                                        details=raw["details"], id=raw["id"],
                                        time=datetime.fromisoformat(raw["time"])))
        os.unlink(taking)
    seen = _recorded_dir(data_dir)
    for item in pending_requests(data_dir):
        # by file name (unique in the folder), not by the id the file claims: no request can hide another
        marker = os.path.join(seen, os.path.basename(item.file))
        if not os.path.exists(marker):
            events.append(request_event(item))
            open(marker, "w").close()
    return events


class PendingRecords:
    """The agent's side, polled from its dispatcher loop: every `interval` seconds expired grants are swept
    (their end recorded) and the pending records taken, to be written through the agent's store."""

    def __init__(self, data_dir: str, interval: float = 2.0) -> None:
        self.data_dir = data_dir
        self.interval = interval
        self._next = 0.0

    def poll(self, now: float) -> list[Event]:
        if now < self._next:
            return []
        self._next = now + self.interval
        if os.geteuid() == 0:
            GrantBook(self.data_dir).sweep()
        return take_pending(self.data_dir)
