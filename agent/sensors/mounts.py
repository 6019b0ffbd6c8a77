"""Mount sensor: new and removed mounts, each with its kind, and the kind of any destination path.

Kinds: removable (USB sticks, SD cards: /sys/block/<disk>/removable, or a device under a USB bus; also any
block device or image the desktop mounted under /media or /run/media/<user>, which is where udisks
puts the drives and images a user attaches at the desk, whatever the kernel's removable flag says),
network-share (nfs, cifs/smb, sshfs, rclone and other network FUSE filesystems), cloud-sync (the sync
folders of Dropbox, OneDrive, Google Drive, iCloud, Nextcloud, Box, whatever their mount), disk-image
(a loop device: a filesystem inside a file, e.g. an encrypted container; it takes the kind of the place
its file lies in when that is removable, a network share or cloud-sync, since what is written into the
image lands there), temporary (tmpfs), local. The kernel signals a changed mount table by POLLPRI on
/proc/self/mountinfo, so the sensor sleeps until something changes instead of polling. On other platforms
psutil.disk_partitions is polled.
"""

from __future__ import annotations

import logging
import os
import re
import select
import sys
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from weightwarden.agent.sensors.base import Counters, SensorStatus, SensorThread, privilege
from weightwarden.agent.sensors.files import SensorHealth

log = logging.getLogger(__name__)

NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "davfs", "fuse.sshfs",
              "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "fuse.goofys", "fuse.davfs2", "fuse.juicefs",
              "fuse.mountpoint-s3", "fuse.blobfuse", "fuse.blobfuse2", "fuse.smbnetfs", "fuse.curlftpfs"}
CLOUD_SYNC_FS = {"fuse.onedriver", "fuse.google-drive-ocamlfuse", "fuse.dropbox", "fuse.insync"}
# Folder names the sync clients create in a home (macOS CloudStorage names start with these too).
CLOUD_SYNC_DIRS = re.compile(
    r"(^|/)(Dropbox( \([^/]*\))?|OneDrive( - [^/]*)?|Google ?Drive|My Drive|iCloud ?Drive|iCloud Drive \(Archive\)"
    r"|Mobile Documents|Nextcloud|ownCloud|Box|Box Sync|CloudStorage)(/|$)")
TEMPORARY_FS = {"tmpfs", "ramfs"}
# udisks mounts what a user attaches (sticks, external disks, SD cards, opened images) under these: many USB
# SSDs report removable=0 and an image opened by the file manager is a loop device, yet both left the desk.
DESKTOP_MEDIA = re.compile(r"^/(run/)?media/[^/]")  # udisks2: /media/<user>/<label>; udisks1: /media/<label>


@dataclass(frozen=True, slots=True)
class Mount:
    mount_point: str
    fstype: str
    source: str
    options: str
    kind: str
    backing_file: str | None = None  # the image file of a loop device


@dataclass(frozen=True, slots=True)
class MountObservation:
    phase: str  # added | removed
    mount: Mount


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def block_device_removable(source: str, sys_root: str = "/sys") -> bool:
    """Whether a /dev/<disk>[partition] source is removable media or sits on a USB bus."""
    name = os.path.basename(source)
    if not source.startswith("/dev/") or not name:
        return False
    try:
        real = os.path.basename(os.path.realpath(source)) if sys_root == "/sys" else name
    except OSError:
        real = name
    disk = real
    class_link = os.path.join(sys_root, "class", "block", real)
    partition_flag = os.path.join(class_link, "partition")
    if os.path.exists(partition_flag):  # a partition: its disk is the parent directory in sysfs
        disk = os.path.basename(os.path.dirname(os.path.realpath(class_link)))
    try:
        with open(os.path.join(sys_root, "block", disk, "removable")) as flag:
            if flag.read().strip() == "1":
                return True
    except OSError:
        pass
    device = os.path.realpath(os.path.join(sys_root, "block", disk, "device"))
    return "/usb" in device


def loop_backing_file(source: str, sys_root: str = "/sys") -> str | None:
    """The file behind a /dev/loopN[pM] source, or None when it is no (attached) loop device."""
    name = os.path.basename(source)
    if not source.startswith("/dev/loop") or not name:
        return None
    match = re.fullmatch(r"(loop\d+)(p\d+)?", name)
    if match is None:
        return None
    try:
        with open(os.path.join(sys_root, "block", match.group(1), "loop", "backing_file")) as backing:
            return backing.read().strip().removesuffix(" (deleted)") or None
    except OSError:
        return None


def classify(mount_point: str, fstype: str, source: str, sys_root: str = "/sys", *, _depth: int = 0) -> str:
    if fstype in CLOUD_SYNC_FS or CLOUD_SYNC_DIRS.search(mount_point):
        return "cloud-sync"
    if fstype in NETWORK_FS or (fstype.startswith("fuse.") and ":" in source):
        return "network-share"
    backing = loop_backing_file(source, sys_root)
    if backing is not None:
        # An image inside an image is followed a few levels at most (and never in circles).
        place = _place_of(backing, _depth + 1) if _depth < 3 else "local"
        if place in ("removable", "network-share", "cloud-sync"):
            return place
        return "removable" if DESKTOP_MEDIA.match(mount_point) else "disk-image"
    if block_device_removable(source, sys_root) or (source.startswith("/dev/") and DESKTOP_MEDIA.match(mount_point)):
        return "removable"
    if fstype in TEMPORARY_FS:
        return "temporary"
    return "local"


def _mount_table(path: str = "/proc/self/mountinfo") -> list[tuple[str, str, str, str]]:
    """(mount point, fstype, source, options) per line of mountinfo."""
    try:
        with open(path) as table:
            lines = table.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        found.append((_unescape(fields[4]), tail[0], _unescape(tail[1]), fields[5]))
    return found


def _place_of(path: str, depth: int) -> str:
    """The kind of the deepest mount holding `path` (for the file behind a loop device)."""
    real = os.path.realpath(path)
    if CLOUD_SYNC_DIRS.search(real):
        return "cloud-sync"
    best: tuple[str, str, str, str] | None = None
    for entry in _mount_table():
        point = entry[0]
        if (real == point or real.startswith(point.rstrip("/") + "/")) and (best is None or len(point) > len(best[0])):
            best = entry
    return classify(best[0], best[1], best[2], _depth=depth) if best else "local"


def read_mounts(path: str = "/proc/self/mountinfo") -> dict[str, Mount]:
    mounts: dict[str, Mount] = {}
    for point, fstype, source, options in _mount_table(path):
        mounts[point] = Mount(point, fstype, source, options, classify(point, fstype, source),
                              loop_backing_file(source))
    return mounts


def path_kind(path: str, mounts: dict[str, Mount] | None = None) -> str:
    """The kind of the place `path` is in: its deepest mount's kind, or cloud-sync by folder name."""
    real = os.path.realpath(path)
    if CLOUD_SYNC_DIRS.search(real):
        return "cloud-sync"
    table = mounts if mounts is not None else read_mounts()
    best = ""
    for point in table:
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best = point
    return table[best].kind if best else "local"


class MountSensor:
    name = "mounts"

    def __init__(self, sink: Callable[[MountObservation], None], on_health: Callable[[SensorHealth], None],
                 *, interval: float = 2.0) -> None:
        self._sink = sink
        self._on_health = on_health
        self.interval = interval
        self.counters = Counters()
        self.mounts: dict[str, Mount] = {}
        self._thread = SensorThread("ww-mounts", self._run)
        self._linux = sys.platform.startswith("linux") and os.path.exists("/proc/self/mountinfo")
        self._state = "stopped"

    def start(self) -> None:
        self.mounts = self._read()
        self._state = "running"
        self._thread.start()
        special = sorted(f"{m.mount_point} ({m.kind})" for m in self.mounts.values()
                         if m.kind in ("removable", "network-share", "cloud-sync"))
        self._on_health(SensorHealth(self.name, "running",
                                     f"{len(self.mounts)} mounts" + (f"; present: {', '.join(special)}"
                                                                     if special else "")))

    def stop(self) -> None:
        self._thread.stop()
        self._state = "stopped"

    def status(self) -> SensorStatus:
        return SensorStatus(self.name, self._state, "mountinfo" if self._linux else "psutil", privilege(),
                            f"{len(self.mounts)} mounts", self.counters.events, self.counters.rate(), 0, 0)

    def _read(self) -> dict[str, Mount]:
        if self._linux:
            return read_mounts()
        return {p.mountpoint: Mount(p.mountpoint, p.fstype, p.device, p.opts,
                                    classify(p.mountpoint, p.fstype, p.device))
                for p in psutil.disk_partitions(all=True)}

    def _run(self) -> None:
        table = open("/proc/self/mountinfo", "rb") if self._linux else None  # noqa: SIM115 - held while running
        thread = self._thread
        poller = select.poll()
        if table is not None:
            poller.register(table.fileno(), select.POLLPRI | select.POLLERR)
            poller.register(thread.waker.fileno(), select.POLLIN)
            table.read()  # armed from here on; a mount made since start() read the table is caught now:
            self._diff(self._read())
        try:
            while not thread.stopping.is_set():
                if table is not None:
                    ready = [fd for fd, _ in poller.poll(30_000)]
                    if thread.waker.fileno() in ready:
                        thread.waker.drain()
                    if table.fileno() not in ready:
                        continue
                    table.seek(0)
                    table.read()  # re-arm the change notification
                elif thread.stopping.wait(self.interval):
                    break
                try:
                    self._diff(self._read())
                except Exception:
                    log.exception("mount table diff failed")
        finally:
            if table is not None:
                table.close()

    def _diff(self, now: dict[str, Mount]) -> None:
        for point in sorted(set(now) - set(self.mounts)):
            self.counters.add()
            self._sink(MountObservation("added", now[point]))
        for point in sorted(set(self.mounts) - set(now)):
            self.counters.add()
            self._sink(MountObservation("removed", self.mounts[point]))
        self.mounts = now
