"""The local accounts that are people: who the machine-wide agent protects.

Read from /etc/passwd (never through NSS: directory-service users are not local accounts, and a lookup
must not hang on an unreachable LDAP server), with the UID range of /etc/login.defs and the login shells
of /etc/shells. Every input is treated as hostile: lines are bytes (names and homes that are not UTF-8
keep their bytes, as `os.fsdecode` text), the file is read up to a bound, a malformed line is a problem
with its line number, not an exception, and homes are looked at on a helper thread with a deadline
(bounded.py), since a home on a hung network share must never block the agent.

Who counts as a person: uid 0 (the administrator: `sudo` downloads land in /root/.cache/huggingface) or a
uid in [UID_MIN, UID_MAX], a login shell (not nologin/false/sync..., and listed in /etc/shells when that
file exists) and a home directory that exists. Everyone else is listed with the reason.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Literal

from weightwarden.agent.safe_open import regular_file
from weightwarden.agent.scope.bounded import Pending, TimedOut, start

PASSWD = "/etc/passwd"
LOGIN_DEFS = "/etc/login.defs"
SHELLS = "/etc/shells"
DEFAULT_UID_MIN, DEFAULT_UID_MAX = 1000, 60000
MAX_FILE_BYTES = 16 * 1024 * 1024  # far beyond any real passwd; a bigger one is read up to here
HOME_SECONDS = 2.0  # the longest a look at one home may take
# Shells that end the session at once: their accounts are services, whatever their uid.
NOT_LOGIN_SHELLS = frozenset({"nologin", "false", "true", "sync", "shutdown", "halt"})

stat_home = os.stat  # a seam: tests replace it with a stat that hangs, as one on a dead NFS server does

Why = Literal["system-account", "no-login-shell", "no-home", "home-unreachable", "duplicate-name"]


@dataclass(frozen=True, slots=True)
class Account:
    """A person's account: name and home are `os.fsdecode` text of the passwd bytes."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True, slots=True)
class NotCovered:
    """An account that is not a person, and why (`why` is the kind, `detail` says it in words)."""

    name: str
    uid: int
    home: str
    why: Why
    detail: str


@dataclass(frozen=True, slots=True)
class Accounts:
    people: tuple[Account, ...]
    not_covered: tuple[NotCovered, ...]
    problems: tuple[str, ...]  # "file:line: message" for lines that are not accounts, unreadable files


@dataclass(frozen=True, slots=True)
class AccountFiles:
    """Where the account databases are; tests point these at files they wrote."""

    passwd: str = PASSWD
    login_defs: str = LOGIN_DEFS
    shells: str = SHELLS


def read_accounts(files: AccountFiles = AccountFiles(), *, home_seconds: float = HOME_SECONDS) -> Accounts:
    """The people and everyone else with why; every home is looked at at once, with one shared deadline."""
    problems: list[str] = []
    uid_min, uid_max = uid_range(files.login_defs, problems)
    shells = login_shells(files.shells, problems)
    candidates: list[tuple[int, Account, Pending[os.stat_result] | TimedOut]] = []
    not_covered: list[tuple[int, NotCovered]] = []  # with the line's place, to list them in file order
    names: set[str] = set()
    looks: dict[str, Pending[os.stat_result] | TimedOut] = {}
    for index, account in enumerate(passwd_entries(files.passwd, problems)):
        why = _why_not(account, uid_min, uid_max, shells, names)
        names.add(account.name)
        if why is None and not os.path.isabs(account.home):
            why = "no-home", f"home {account.home!r} is not an absolute path"
        if why is not None:
            not_covered.append((index, NotCovered(account.name, account.uid, account.home, *why)))
        else:  # one look per home: accounts may share one
            if account.home not in looks:
                looks[account.home] = _look_at_home(account.home)
            candidates.append((index, account, looks[account.home]))
    deadline = time.monotonic() + home_seconds
    people: list[Account] = []
    for index, account, look in candidates:
        home_why = _home_why(account.home, look, deadline, home_seconds)
        if home_why is None:
            people.append(account)
        else:
            not_covered.append((index, NotCovered(account.name, account.uid, account.home, *home_why)))
    not_covered.sort(key=lambda item: item[0])
    return Accounts(tuple(people), tuple(n for _index, n in not_covered), tuple(problems))


def passwd_entries(path: str, problems: list[str]) -> list[Account]:
    """Every well-formed line of a passwd file, in file order; the others become problems."""
    data = read_bounded(path, problems)
    if data is None:
        return []
    entries = []
    for number, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if not line.strip() or line.startswith(b"#"):
            continue
        if line[:1] in (b"+", b"-"):  # NIS compat entries name accounts kept elsewhere
            problems.append(f"{path}:{number}: NIS entry skipped (directory-service accounts are not local)")
            continue
        fields = line.split(b":")
        if len(fields) != 7:
            problems.append(f"{path}:{number}: {len(fields)} fields, 7 expected")
            continue
        name, _password, uid, gid, _gecos, home, shell = fields
        if not name or not _is_id(uid) or not _is_id(gid):
            problems.append(f"{path}:{number}: no name, or a uid or gid that is not a number")
            continue
        entries.append(Account(os.fsdecode(name), int(uid), int(gid), os.fsdecode(home),
                               os.fsdecode(shell) or "/bin/sh"))  # passwd(5): empty means /bin/sh
    return entries


def uid_range(path: str, problems: list[str]) -> tuple[int, int]:
    """UID_MIN and UID_MAX of login.defs; the shadow defaults (1000, 60000) for anything missing or odd."""
    values: dict[str, int] = {}
    data = read_bounded(path, problems, missing_ok=True) or b""
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("UID_MIN", "UID_MAX"):
            try:
                values[parts[0]] = _number(parts[1])
            except ValueError:
                problems.append(f"{path}:{number}: {parts[0]} {parts[1]!r} is not a number; default used")
    low, high = values.get("UID_MIN", DEFAULT_UID_MIN), values.get("UID_MAX", DEFAULT_UID_MAX)
    if not 0 < low <= high:
        problems.append(f"{path}: UID_MIN {low} and UID_MAX {high} make no range; {DEFAULT_UID_MIN}-"
                        f"{DEFAULT_UID_MAX} used")
        return DEFAULT_UID_MIN, DEFAULT_UID_MAX
    return low, high


def login_shells(path: str, problems: list[str]) -> frozenset[str] | None:
    """The shells listed in /etc/shells, or None when there is no such file (then any shell but the
    NOT_LOGIN_SHELLS counts)."""
    data = read_bounded(path, problems, missing_ok=True)
    if data is None:
        return None
    lines = (line.strip() for line in data.split(b"\n"))
    return frozenset(os.fsdecode(line) for line in lines if line and not line.startswith(b"#"))


def is_login_shell(shell: str, listed: frozenset[str] | None) -> bool:
    if os.path.basename(shell) in NOT_LOGIN_SHELLS:
        return False
    return listed is None or shell in listed


def _look_at_home(home: str) -> Pending[os.stat_result] | TimedOut:
    try:
        return start("home:" + home, lambda: stat_home(home))
    except TimedOut as stuck:
        return stuck


def _home_why(home: str, look: Pending[os.stat_result] | TimedOut, deadline: float, seconds: float
              ) -> tuple[Why, str] | None:
    try:
        if isinstance(look, TimedOut):
            raise look
        info = look.result(deadline, seconds)
    except TimedOut as error:
        return "home-unreachable", f"home {home} unreachable: {error}"
    except FileNotFoundError:
        return "no-home", f"home {home} does not exist"
    except OSError as error:
        return "home-unreachable", f"home {home} unreachable: {error.strerror or error}"
    if not stat.S_ISDIR(info.st_mode):
        return "no-home", f"home {home} is not a directory"
    return None


def read_bounded(path: str, problems: list[str], *, missing_ok: bool = False,
                 limit: int | None = None) -> bytes | None:
    """A regular file's first `limit` bytes (default MAX_FILE_BYTES; no FIFO wait, no symlink followed at
    the last step)."""
    limit = MAX_FILE_BYTES if limit is None else limit
    try:
        with regular_file(path) as (fd, info):
            if info.st_size > limit:
                problems.append(f"{path}: {info.st_size} bytes; only the first {limit} were read")
            return _read_up_to(fd, limit)
    except FileNotFoundError:
        if not missing_ok:
            problems.append(f"{path}: does not exist")
        return None
    except OSError as error:
        problems.append(f"{path}: cannot read: {error.strerror or error}")
        return None


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _why_not(account: Account, uid_min: int, uid_max: int, shells: frozenset[str] | None, names: set[str]
             ) -> tuple[Why, str] | None:
    """Why the passwd entry alone says this is not a person (the home is looked at separately)."""
    if account.name in names:
        return "duplicate-name", f"{account.name} is listed again above; the first entry counts"
    if account.uid != 0 and not uid_min <= account.uid <= uid_max:
        return "system-account", f"system account (uid {account.uid} outside {uid_min}-{uid_max})"
    if not is_login_shell(account.shell, shells):
        return "no-login-shell", f"no login shell ({account.shell})"
    return None


_ID = re.compile(rb"[0-9]{1,10}")


def _is_id(field: bytes) -> bool:
    return _ID.fullmatch(field) is not None and int(field) < 2**32


def _number(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        return int(text, 0)  # 0x... as login.defs allows
