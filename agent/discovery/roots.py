"""Where discovery looks, and which filesystems it leaves alone.

Roots: the caller's list (the scope engineer's per-user homes plug in through `Discovery(roots=...)`); by
default `default_roots(config)`: the protected roots, the homes (system mode: /home, root's home and every
passwd account with a real home; user mode: your own home) and `[inventory] discover_roots`.

Filesystems: a mount point under a root is entered only when its filesystem holds files people write:
pseudo filesystems (proc, sysfs, cgroup, ...) and the kernel's trees (/proc, /sys, /dev, /run) are never
entered; network and FUSE filesystems only with `[inventory] discover_network = true` (a hung share must not
stall the pass, and remote bytes are not this machine's to index); a bind mount of a subtree (its mount
root is not "/") is left out, since what it shows is walked where its filesystem is mounted, and so is an
overlay whose layers all lie in the walked tree (each model is found once, by its own path). The decision is
made from /proc/self/mountinfo by path, before the mount point is stat'ed, so a hung share is never touched.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass

from weightwarden.agent.config import Config
from weightwarden.agent.paths import drop_nested, existing, home, unique_paths
from weightwarden.agent.sensors.filesystems import overlay_layers

KERNEL_TREES = ("/proc", "/sys", "/dev", "/run")
PSEUDO_TYPES = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devtmpfs", "devpts", "debugfs", "tracefs", "securityfs", "pstore",
    "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs", "nsfs",
    "rpc_pipefs", "selinuxfs", "ramfs",
})
NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "davfs", "lustre", "gpfs",
    "ncpfs", "coda", "sshfs", "virtiofs",
})
LOWEST_LOGIN_UID = 1000
NOBODY_UID = 65534


@dataclass(frozen=True, slots=True)
class Mount:
    point: str
    fstype: str
    root: str  # the subtree of its filesystem this mount shows: "/" unless it is a bind mount
    layers: tuple[str, ...] = ()  # an overlay's lower and upper folders (its super options)


def read_mounts(path: str = "/proc/self/mountinfo") -> dict[str, Mount]:
    """Mount point -> Mount; {} where there is no mountinfo (not Linux)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as lines:
            text = lines.read()
    except OSError:
        return {}
    mounts: dict[str, Mount] = {}
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-")
            point, root, fstype = _unescape(fields[4]), _unescape(fields[3]), fields[separator + 1]
        except (ValueError, IndexError):
            continue
        layers: tuple[str, ...] = ()
        if fstype == "overlay" and len(fields) > separator + 3:
            found = overlay_layers(fields[separator + 3])
            layers = (*found.lower, *([found.upper] if found.upper else []))
        mounts[point] = Mount(point, fstype, root, layers)  # a later mount over the same point hides the earlier
    return mounts


class MountFilter:
    """Whether a directory discovery is about to enter is a mount point it must leave alone, and why."""

    def __init__(self, mounts: dict[str, Mount], *, network: bool = False, roots: tuple[str, ...] = ()) -> None:
        """`roots`: what the pass walks; an overlay whose every layer lies under them is walked there."""
        self._mounts = mounts
        self._network = network
        self._roots = roots

    def skip_reason(self, path: str) -> str | None:
        if path in KERNEL_TREES or any(path.startswith(tree + "/") for tree in KERNEL_TREES):
            return "kernel tree"
        mount = self._mounts.get(path)
        if mount is None:
            return None
        kind = mount.fstype.split(".", 1)[0]
        if kind in PSEUDO_TYPES:
            return f"pseudo filesystem ({mount.fstype})"
        if not self._network and (kind in NETWORK_TYPES or kind == "fuse" or mount.fstype.startswith("fuse.")):
            return f"network or FUSE filesystem ({mount.fstype}; [inventory] discover_network)"
        if mount.root != "/":
            return f"bind mount of {mount.root} ({mount.fstype})"
        if mount.layers and all(_under(layer, self._roots) for layer in mount.layers):
            return "overlay of folders walked where they are"  # each model once, by its own path
        return None


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def default_roots(config: Config, homes: Iterable[str] | None = None) -> list[str]:
    """Protected roots, homes (per mode) and [inventory] discover_roots: existing, outermost only. `homes`:
    the people's homes as the agent's scope knows them (agent/scope); else read from the account database."""
    inventory = config.inventory
    candidates = [*inventory.roots, *inventory.extra_roots]
    if inventory.discover_homes:
        if config.mode != "system":
            candidates += [home()]
        else:
            candidates += ["/home", *homes] if homes is not None else system_homes()
    candidates += inventory.discover_roots
    return drop_nested(existing(unique_paths(candidates)))


def system_homes(accounts: Iterable[pwd.struct_passwd] | None = None) -> list[str]:
    """/home, root's home and the home of every login account (uid 1000 and up, not nobody). Accounts whose
    home is "/" or a system folder are left out: walking "/" is not "their home"."""
    homes = ["/home"]
    for account in accounts if accounts is not None else _accounts():
        uid, directory = account.pw_uid, account.pw_dir
        if not directory or directory == "/" or not os.path.isabs(directory):
            continue
        if uid == 0 or (uid >= LOWEST_LOGIN_UID and uid != NOBODY_UID):
            homes.append(directory)
    return unique_paths(homes)


def _accounts() -> list[pwd.struct_passwd]:
    try:
        return pwd.getpwall()
    except OSError:
        return []


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 0 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
