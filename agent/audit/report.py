"""The audit of the protected model files: who can read each one, where it is, where its copies went.

`audit(files, copy_alerts)` looks at each file (a few stat and getxattr calls) and returns an AuditReport;
`AuditReport.to_dict()` is the JSON object `weightwarden audit --json` prints (format "weightwarden-audit",
version 1). Its keys, stable:

    format, version       "weightwarden-audit", 1
    generated             RFC 3339 UTC time of the audit
    host                  the machine's name
    files                 one object per protected model file, sorted by path:
      path                display text (agent/events.py display_path: non-UTF-8 bytes and control
                          characters escaped); path_hex: the raw bytes in hex when the name needed escaping
      model, format, size as the inventory recorded them
      status              "present" or "missing" (gone since the agent last saw it: nothing else is set)
      error               why the file could not be looked at (permission denied...), else null
      owner, group        {"id": 1000, "name": "ana"} (name null when no account has that id)
      mode                permission bits in octal, "0640"
      acl                 named entries of its POSIX access ACL: [{"tag": "user"|"group"|"mask", "id",
                          "name", "perm": "r--", "effective": "r--" (perm limited by the mask)}]; [] if none
      place               agent/detect/places.py kind: local, temporary, removable, network-share,
                          cloud-sync, disk-image
      flags               sorted subset of FLAGS (below)
      readers             local accounts the permissions let read it, computed: {"count", "names" (at
                          most READERS_SHOWN, sorted), "truncated"}; root is left out (it reads everything)
      copies              model-copy alerts naming it as their source: [{"alert_id", "time", "copy_path",
                          "destination_kind", "severity"}]
      policy              the access policy governing it (id, mode, file, line), its allow entries and the
                          active grants for it (agent/audit/policy_column.py); null when no policy governs it
                          (its permissions alone decide who opens it)
    summary               {"files", "present", "missing", "with_findings", "high_risk",
                          "flags": {flag: number of files, for every flag in FLAGS},
                          "servers_exposed": model servers answering without credentials beyond loopback now,
                          "exposure_findings": exposure findings on record}
    serving               model servers now and exposure findings on record (agent/audit/serving.py)

Flags. The permission flags count only what can happen: "world-readable" and "world-writable" need the other
class to reach the file (o+x on every folder above it, ACLs included), as agent/detect/posture.py judges it
(a 0644 model in a 0700 home is not exposed). "group-writable": the owning group (or, with an ACL, its mask)
may write. "acl-named-reader": a named user or group ACL entry grants read. Places: "removable-media",
"network-share", "cloud-sync", "temporary". HIGH_RISK flags make the command exit 1, and so
does a protected model served now without credentials beyond loopback (agent/audit/serving.py).
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from weightwarden.agent.access.grants import Grant
from weightwarden.agent.access.policy import PolicySet, load_policies
from weightwarden.agent.audit.acl import (
    EXECUTE,
    GROUP,
    MASK,
    OTHER,
    READ,
    USER,
    WRITE,
    Acl,
    AclError,
    perm_text,
    read_acl,
)
from weightwarden.agent.audit.policy_column import policy_of
from weightwarden.agent.audit.serving import ServingAudit
from weightwarden.agent.detect.places import destination_kind
from weightwarden.agent.events import ModelFile, display_path, format_time, raw_path_hex, utc_now

FORMAT, VERSION = "weightwarden-audit", 1
FLAGS = ("world-readable", "world-writable", "group-writable", "acl-named-reader", "removable-media",
         "network-share", "cloud-sync", "temporary")
HIGH_RISK = ("world-readable", "world-writable", "removable-media")
PLACE_FLAGS = {"removable": "removable-media", "network-share": "network-share", "cloud-sync": "cloud-sync",
               "temporary": "temporary"}
READERS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Account:
    uid: int
    name: str
    gids: frozenset[int]


class Accounts:
    """The local accounts (pwd, with their groups from grp), read once per audit."""

    def __init__(self, accounts: Sequence[Account] | None = None) -> None:
        self._given = accounts

    @cached_property
    def all(self) -> tuple[Account, ...]:
        if self._given is not None:
            return tuple(self._given)
        members: dict[str, set[int]] = {}
        for group in grp.getgrall():
            for member in group.gr_mem:
                members.setdefault(member, set()).add(group.gr_gid)
        seen: dict[int, Account] = {}
        for entry in pwd.getpwall():
            if entry.pw_uid not in seen:
                seen[entry.pw_uid] = Account(entry.pw_uid, entry.pw_name,
                                             frozenset({entry.pw_gid, *members.get(entry.pw_name, ())}))
        return tuple(sorted(seen.values(), key=lambda a: a.name))


def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


@dataclass(frozen=True, slots=True)
class CopySeen:
    alert_id: str
    time: str
    copy_path: str
    destination_kind: str | None
    severity: int


@dataclass
class FileAudit:
    path: str  # display text
    path_hex: str | None
    model: str
    format: str
    size: int
    status: str = "present"
    error: str | None = None
    owner: dict[str, Any] | None = None
    group: dict[str, Any] | None = None
    mode: str | None = None
    acl: list[dict[str, Any]] = field(default_factory=list)
    place: str | None = None
    flags: list[str] = field(default_factory=list)
    readers: dict[str, Any] = field(default_factory=lambda: {"count": 0, "names": [], "truncated": False})
    copies: list[CopySeen] = field(default_factory=list)
    policy: dict[str, Any] | None = None  # agent/audit/policy_column.py

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "path_hex": self.path_hex, "model": self.model, "format": self.format,
                "size": self.size, "status": self.status, "error": self.error, "owner": self.owner,
                "group": self.group, "mode": self.mode, "acl": self.acl, "place": self.place,
                "flags": self.flags, "readers": self.readers,
                "copies": [{"alert_id": c.alert_id, "time": c.time, "copy_path": c.copy_path,
                            "destination_kind": c.destination_kind, "severity": c.severity} for c in self.copies],
                "policy": self.policy}


@dataclass
class AuditReport:
    generated: datetime
    host: str
    files: list[FileAudit]
    serving: ServingAudit = field(default_factory=ServingAudit)

    @property
    def summary(self) -> dict[str, Any]:
        flags = {flag: sum(flag in f.flags for f in self.files) for flag in FLAGS}
        return {"files": len(self.files), "present": sum(f.status == "present" for f in self.files),
                "missing": sum(f.status == "missing" for f in self.files),
                "with_findings": sum(bool(f.flags) for f in self.files),
                "high_risk": sum(any(flag in HIGH_RISK for flag in f.flags) for f in self.files), "flags": flags,
                "servers_exposed": self.serving.exposed_now, "exposure_findings": len(self.serving.findings)}

    @property
    def high_risk(self) -> bool:
        return any(flag in HIGH_RISK for file in self.files for flag in file.flags) or self.serving.exposed_now > 0

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "generated": format_time(self.generated), "host": self.host,
                "files": [f.to_dict() for f in self.files], "summary": self.summary,
                "serving": self.serving.to_dict()}


def audit(files: Iterable[ModelFile], copy_alerts: Iterable[Mapping[str, Any]] = (), *,
          accounts: Accounts | None = None, place_of: Any = destination_kind, policies: PolicySet | None = None,
          grants: Sequence[Grant] = ()) -> AuditReport:
    """Audit the protected files among `files` (the store's inventory); `copy_alerts`: stored alert records;
    `policies`: the access policy (default: the installed files), `grants`: the grants file's grants."""
    accounts = accounts or Accounts()
    policies = policies if policies is not None else load_policies()
    copies = copies_by_source(copy_alerts)
    now = time.time()
    audited = []
    for file in sorted(files, key=lambda f: f.shown):
        if file.protected:
            audited.append(audit_file(file, accounts, copies.get(file.shown, []), place_of))
            audited[-1].policy = policy_of(file.shown, file.model, policies, grants, now)
    return AuditReport(utc_now(), socket.gethostname(), audited)


def audit_file(file: ModelFile, accounts: Accounts, copies: list[CopySeen], place_of: Any) -> FileAudit:
    result = FileAudit(file.shown, raw_path_hex(file.path), file.model, file.format, file.size, copies=copies)
    try:
        info = os.stat(file.path)
        acl = read_acl(file.path, info.st_mode)
        folders = _folders(file.path)
    except FileNotFoundError:
        result.status = "missing"
        return result
    except (OSError, AclError) as error:
        result.error = f"{type(error).__name__}: {getattr(error, 'strerror', None) or error}"
        return result
    result.owner = {"id": info.st_uid, "name": user_name(info.st_uid)}
    result.group = {"id": info.st_gid, "name": group_name(info.st_gid)}
    result.mode = f"{stat.S_IMODE(info.st_mode):04o}"
    mask = acl.mask
    result.acl = [{"tag": e.tag_name, "id": e.id,
                   "name": (user_name(e.id) if e.tag == USER else group_name(e.id)) if e.id is not None else None,
                   "perm": perm_text(e.perm), "effective": perm_text(e.perm & mask)}
                  for e in acl.entries if e.tag in (USER, GROUP, MASK)]
    place = place_of(file.path)
    result.place = place
    flags: set[str] = set()
    other_perm = _other(acl)
    reachable = all(_other(f_acl) & EXECUTE for _, _, _, f_acl in folders)
    if other_perm & READ and reachable:
        flags.add("world-readable")
    if other_perm & WRITE and reachable:
        flags.add("world-writable")
    if info.st_mode & stat.S_IWGRP:  # with an ACL, the group bits are the mask: someone in a group may write
        flags.add("group-writable")
    if any(e.tag in (USER, GROUP) and e.perm & mask & READ for e in acl.entries):
        flags.add("acl-named-reader")
    if place in PLACE_FLAGS:
        flags.add(PLACE_FLAGS[place])
    result.flags = sorted(flags)
    readers = [a.name for a in accounts.all if a.uid != 0
               and all(f_acl.allows(EXECUTE, a.uid, a.gids, uid, gid) for uid, gid, _, f_acl in folders)
               and acl.allows(READ, a.uid, a.gids, info.st_uid, info.st_gid)]
    result.readers = {"count": len(readers), "names": readers[:READERS_SHOWN],
                      "truncated": len(readers) > READERS_SHOWN}
    return result


def _other(acl: Acl) -> int:
    entry = acl.first(OTHER)
    return entry.perm if entry is not None else 0


def _folders(path: str) -> list[tuple[int, int, int, Acl]]:
    """(owner, group, mode, ACL) of every folder above `path`, up to /: each must let a reader through."""
    found = []
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        info = os.stat(folder)
        found.append((info.st_uid, info.st_gid, info.st_mode, read_acl(folder, info.st_mode)))
        up = os.path.dirname(folder)
        if up == folder:
            return found
        folder = up


def copies_by_source(alerts: Iterable[Mapping[str, Any]]) -> dict[str, list[CopySeen]]:
    """model-copy alerts by the display path of each protected file they name as a source."""
    found: dict[str, list[CopySeen]] = {}
    for alert in alerts:
        if alert.get("rule") != "model-copy":
            continue
        evidence = _mapping(alert.get("evidence"))
        source = evidence.get("source_path")
        sources: list[str] = [source] if isinstance(source, str) and source else []
        for key in ("source_paths", "other_sources"):
            value = evidence.get(key)
            if isinstance(value, list):
                sources += [s for s in value if isinstance(s, str)]
        destination = _mapping(alert.get("destination"))
        copy_path = evidence.get("copy_path") or destination.get("path") or ""
        seen = CopySeen(str(alert.get("id", "")), str(alert.get("time", "")), display_path(str(copy_path)),
                        destination.get("kind"), int(alert.get("severity", 0) or 0))
        for source in dict.fromkeys(sources):
            found.setdefault(source, []).append(seen)
    return found


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
