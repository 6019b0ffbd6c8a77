"""The filesystems behind the mount table: which ones hold files worth watching, each counted once.

/proc/self/mountinfo lists every mount; several can show the same filesystem (a bind mount, a subvolume
mounted twice, a directory bound into a container): they share the device number (major:minor), so a
filesystem is marked once, and events are resolved through the mount that shows its whole tree (root "/").
Pseudo filesystems (proc, sysfs, cgroup, devpts, ...) hold no user files and are skipped. FUSE filesystems
are named: their file handles are the daemon's node ids, which stop resolving once the kernel forgets the
inode, so the fs-writes sensor watches them with inotify instead.

Mount points are read as raw bytes (mountinfo escapes space, tab, newline and backslash as octal) and
decoded with os.fsdecode, so a non-UTF-8 mount point keeps its bytes through surrogateescape.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# Filesystems that hold no user files (kernel interfaces, control files, namespaces, device nodes).
PSEUDO_FS = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs", "securityfs", "debugfs", "tracefs", "bpf",
    "mqueue", "hugetlbfs", "pstore", "configfs", "fusectl", "binfmt_misc", "autofs", "efivarfs", "nsfs",
    "rpc_pipefs", "selinuxfs", "smackfs", "apparmorfs", "nfsd", "pipefs", "sockfs", "anon_inodefs", "cpuset",
    "rootfs", "binder", "resctrl",
})


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of mountinfo."""

    mount_id: int
    device: str  # major:minor of the filesystem (shared by its bind mounts)
    root: str  # the directory of the filesystem mounted here ("/" for the whole tree)
    mount_point: str
    fstype: str
    source: str
    options: str  # per-mount options (ro, nosuid, ...)
    super_options: str = ""  # the filesystem's own (an overlay's lowerdir, upperdir, workdir)


def _unescape(field: bytes) -> str:
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field))


def read_entries(path: str = "/proc/self/mountinfo") -> list[MountEntry]:
    try:
        with open(path, "rb") as table:
            lines = table.read().splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        left, _, right = line.partition(b" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        try:
            mount_id = int(fields[0])
        except ValueError:
            continue
        entries.append(MountEntry(mount_id, fields[2].decode("ascii", "replace"), _unescape(fields[3]),
                                  _unescape(fields[4]), os.fsdecode(tail[0]), _unescape(tail[1]),
                                  fields[5].decode("ascii", "replace"),
                                  os.fsdecode(tail[2]) if len(tail) > 2 else ""))
    return entries


@dataclass(frozen=True, slots=True)
class OverlayLayers:
    lower: tuple[str, ...]
    upper: str | None
    work: str | None


def overlay_layers(super_options: str) -> OverlayLayers:
    """An overlay's folders from its super options (as mountinfo shows them: octal escapes, and a comma or
    colon inside a folder name escaped with a backslash)."""
    lower: list[str] = []
    upper = work = None
    for option in _split_escaped(super_options, ","):
        key, _, value = option.partition("=")
        if key in ("lowerdir", "lowerdir+", "datadir+"):
            lower += [_layer(v) for v in _split_escaped(value, ":") if v]
        elif key == "upperdir":
            upper = _layer(value)
        elif key == "workdir":
            work = _layer(value)
    return OverlayLayers(tuple(lower), upper, work)


def _layer(text: str) -> str:
    return _unescape(os.fsencode(re.sub(r"\\([,:])", r"\1", text)))


def _split_escaped(text: str, separator: str) -> list[str]:
    parts = re.split(rf"(?<!\\){re.escape(separator)}", text)
    return parts


def is_pseudo(fstype: str) -> bool:
    return fstype in PSEUDO_FS


def is_fuse(fstype: str) -> bool:
    return fstype in ("fuse", "fuseblk") or fstype.startswith(("fuse.", "fuseblk."))


def whole_tree_first(entries: list[MountEntry]) -> MountEntry:
    """The mount to resolve a filesystem's handles through: one showing its whole tree, the shortest path."""
    return min(entries, key=lambda e: (e.root != "/", len(e.mount_point), e.mount_id))


def by_device(entries: list[MountEntry]) -> dict[str, list[MountEntry]]:
    """The mounts of each filesystem (bind mounts together), in table order; pseudo filesystems and mounts
    hidden under a later mount on the same point (nothing reaches them by path) left out."""
    top = {entry.mount_point: entry.mount_id for entry in entries}  # the table lists mounts in mount order
    grouped: dict[str, list[MountEntry]] = {}
    for entry in entries:
        if not is_pseudo(entry.fstype) and top[entry.mount_point] == entry.mount_id:
            grouped.setdefault(entry.device, []).append(entry)
    return grouped
