"""POSIX access ACLs: the `system.posix_acl_access` extended attribute, decoded, and the kernel's access check.

The attribute (linux/posix_acl_xattr.h) is a 4-byte little-endian version (2), then 8-byte entries: tag (u16),
perm (u16: 4 read, 2 write, 1 execute), id (u32: a uid for ACL_USER, a gid for ACL_GROUP, else unused).
A file without the attribute has only its mode bits, which are the minimal ACL (owner, group, other).

`allows` is the check of POSIX.1e as Linux applies it (fs/posix_acl.c posix_acl_permission): the owner gets
the owner entry; else a named user entry, limited by the mask; else the union of the owning group and every
named group the user is in, limited by the mask (denied if none of them grants); else other. Root's
capabilities are not modelled here: they bypass the check altogether.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass

XATTR = "system.posix_acl_access"
VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TAG_NAMES = {USER_OBJ: "owner", USER: "user", GROUP_OBJ: "owning-group", GROUP: "group", MASK: "mask",
             OTHER: "other"}
READ, WRITE, EXECUTE = 4, 2, 1
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
MAX_ENTRIES = 4096  # far above what any file system stores (ext4 fits about 500 in a block)


class AclError(ValueError):
    """The attribute is not a version 2 POSIX ACL."""


@dataclass(frozen=True, slots=True)
class AclEntry:
    tag: int
    perm: int
    id: int | None  # uid for USER, gid for GROUP; None for the other tags

    @property
    def tag_name(self) -> str:
        return TAG_NAMES.get(self.tag, f"tag-{self.tag:#x}")


@dataclass(frozen=True, slots=True)
class Acl:
    entries: tuple[AclEntry, ...]

    @classmethod
    def from_mode(cls, mode: int) -> Acl:
        """The minimal ACL a mode stands for (a file without the attribute)."""
        return cls((AclEntry(USER_OBJ, (mode >> 6) & 7, None), AclEntry(GROUP_OBJ, (mode >> 3) & 7, None),
                    AclEntry(OTHER, mode & 7, None)))

    @property
    def extended(self) -> bool:
        """Named users or groups (or a mask): more than the mode bits say."""
        return any(e.tag in (USER, GROUP, MASK) for e in self.entries)

    def first(self, tag: int) -> AclEntry | None:
        return next((e for e in self.entries if e.tag == tag), None)

    @property
    def mask(self) -> int:
        entry = self.first(MASK)
        return 7 if entry is None else entry.perm

    def named(self) -> list[AclEntry]:
        return [e for e in self.entries if e.tag in (USER, GROUP)]

    def allows(self, want: int, uid: int, gids: frozenset[int], owner: int, owning_group: int) -> bool:
        if uid == owner:
            entry = self.first(USER_OBJ)
            return entry is not None and entry.perm & want == want
        for entry in self.entries:
            if entry.tag == USER and entry.id == uid:
                return entry.perm & self.mask & want == want
        in_a_group = False
        for entry in self.entries:
            if (entry.tag == GROUP_OBJ and owning_group in gids) or (entry.tag == GROUP and entry.id in gids):
                in_a_group = True
                if entry.perm & self.mask & want == want:
                    return True
        if in_a_group:
            return False
        entry = self.first(OTHER)
        return entry is not None and entry.perm & want == want


def decode(data: bytes) -> Acl:
    if len(data) < _HEADER.size or (len(data) - _HEADER.size) % _ENTRY.size:
        raise AclError(f"{len(data)} bytes is not a header and whole 8-byte entries")
    (version,) = _HEADER.unpack_from(data)
    if version != VERSION:
        raise AclError(f"version {version}, expected {VERSION}")
    count = (len(data) - _HEADER.size) // _ENTRY.size
    if count > MAX_ENTRIES:
        raise AclError(f"{count} entries")
    entries = []
    for index in range(count):
        tag, perm, ident = _ENTRY.unpack_from(data, _HEADER.size + index * _ENTRY.size)
        entries.append(AclEntry(tag, perm & 7, ident if tag in (USER, GROUP) else None))
    return Acl(tuple(entries))


def read_acl(path: str | bytes | int, mode: int) -> Acl:
    """The file's access ACL (`path` may be an open descriptor), or the minimal one of `mode` when it has
    none (or the file system has no ACLs). OSError for anything else (the file vanished, permission denied)."""
    try:
        data = os.getxattr(path, XATTR) if isinstance(path, int) else os.getxattr(path, XATTR, follow_symlinks=True)
    except OSError as error:
        if error.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return Acl.from_mode(mode)
        raise
    return decode(data)


def perm_text(perm: int) -> str:
    return ("r" if perm & READ else "-") + ("w" if perm & WRITE else "-") + ("x" if perm & EXECUTE else "-")
