"""Which file sensor watches each mount, from the moment it appears until it goes (dispatcher thread).

The mount sensor reports mounts; the file sensors watch them; this room decides which one takes a mount
and keeps the table `weightwarden status` shows ("mounts watched"). Nothing is configured:

- system mode with the fs-writes sensor: every mount goes to it (it marks the filesystem, counts a bind
  mount once, skips pseudo filesystems); a mount it cannot mark comes back as `MarkFallback` and is
  given to the inotify file sensor as a root;
- otherwise (user mode: the user's whole home is watched from the start, see `file_sensor_roots`; or no
  file-id marks here): the inotify file sensor gets as a new root every mount
  that can hold a copy leaving the desk: removable media, network shares, disk images and cloud-sync
  folders wherever they are, and anything mounted under /media, /run/media, /mnt or the watched home.

Once a sensor reports the mount watched (`WatchStarted`), a stick, share, image or sync folder, or anything
under /media, /run/media or /mnt, is rescanned, so a model already on it (or copied there before the watch
was in place) that copies a protected one raises model-copy. A removed mount is released.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from weightwarden.agent.config import Config
from weightwarden.agent.events import Record
from weightwarden.agent.paths import drop_nested, existing, home, is_inside
from weightwarden.agent.pipeline.activity_events import mount_event
from weightwarden.agent.sensors.base import SensorStatus, privilege
from weightwarden.agent.sensors.files import WatchStarted
from weightwarden.agent.sensors.filesystems import is_pseudo
from weightwarden.agent.sensors.fs_writes import MarkFallback
from weightwarden.agent.sensors.mounts import Mount, MountObservation

# kinds of place a copy leaves the desk through: rescanned when they appear
LEAVING_KINDS = frozenset({"removable", "network-share", "disk-image", "cloud-sync"})
USER_MOUNT_PLACES = re.compile(r"^/(media|run/media|mnt)(/|$)")


class Roots(Protocol):
    def add_root(self, root: str) -> None: ...

    def remove_root(self, root: str) -> None: ...


class Marks(Protocol):
    def add_mount(self, mount_point: str) -> None: ...

    def remove_mount(self, mount_point: str) -> None: ...


class MountCoverage:
    name = "mounts-watched"

    def __init__(self, files: Roots, marks: Marks | None, request_rescan: Callable[[list[str], str], None], *,
                 mounts: dict[str, Mount], watched_roots: Sequence[str] = ()) -> None:
        """`mounts`: the mount table at start (kinds of the mounts the sensors cover from the start);
        `watched_roots`: the inotify sensor's roots (a mount inside one is watched on its own)."""
        self._files = files
        self._marks = marks
        self._request_rescan = request_rescan
        self._watched_roots = list(watched_roots)
        self.kinds: dict[str, str] = {point: mount.kind for point, mount in mounts.items()}
        self.fstypes: dict[str, str] = {point: mount.fstype for point, mount in mounts.items()}
        self.watched: dict[str, str] = {}  # mount point -> how (fanotify, inotify, polling)
        self._inotify_roots: set[str] = set()  # mounts given to the inotify sensor by us

    def use_inotify_for_mounts(self) -> None:
        """The fs-writes sensor could not start after all: mounts go to the inotify sensor."""
        self._marks = None

    # ------------------------------------------------------------------ handlers

    def mount(self, obs: MountObservation, at: datetime) -> list[Record]:
        mount = obs.mount
        point = mount.mount_point
        if obs.phase == "added":
            self.kinds[point], self.fstypes[point] = mount.kind, mount.fstype
            if self._marks is not None:
                self._marks.add_mount(point)  # marked, or handed back as a MarkFallback
            elif self._wanted(mount):
                self._inotify_roots.add(point)
                self._files.add_root(point)
        else:
            self.kinds.pop(point, None)
            self.fstypes.pop(point, None)
            self.watched.pop(point, None)
            if self._marks is not None:
                self._marks.remove_mount(point)
            if point in self._inotify_roots:
                self._inotify_roots.discard(point)
                self._files.remove_root(point)
        return [mount_event(obs, at)]

    def fallback(self, obs: MarkFallback, at: datetime) -> list[Record]:
        """A mount the fs-writes sensor cannot mark (it reported why as health): inotify watches it."""
        if obs.mount_point not in self._inotify_roots:
            self._inotify_roots.add(obs.mount_point)
            self._files.add_root(obs.mount_point)
        return []

    def watch_started(self, obs: WatchStarted, at: datetime) -> list[Record]:
        kind = self.kinds.get(obs.path)
        if kind is None:
            return []  # a configured root, not a mount
        self.watched[obs.path] = obs.method
        if self._leaving(obs.path):
            self._request_rescan([obs.path], "mounted")  # what was on it before we watched
        return []

    # ------------------------------------------------------------------ policy

    def _wanted(self, mount: Mount) -> bool:
        if is_pseudo(mount.fstype):
            return False
        point = mount.mount_point
        return (mount.kind in LEAVING_KINDS or bool(USER_MOUNT_PLACES.match(point))
                or any(is_inside(point, root) for root in self._watched_roots))

    # ------------------------------------------------------------------ status

    def status(self) -> SensorStatus:
        """Sticks, shares, images, sync folders and anything on inotify by name; other local mounts (/, /boot,
        /var ...) by count."""
        shown = [f"{point} ({self.kinds.get(point, '?')}, {self.fstypes.get(point, '?')}, {how})"
                 for point, how in sorted(self.watched.items()) if self._leaving(point) or how != "fanotify"]
        message = f"{len(self.watched)} mounts watched"
        if shown:
            message += ": " + ", ".join(shown)
        if len(self.watched) > len(shown):
            message += f"; {len(self.watched) - len(shown)} other local mounts through filesystem marks"
        methods = sorted(set(self.watched.values())) or ["none"]
        return SensorStatus(self.name, "running", "+".join(methods), privilege(), message, len(self.watched))

    def _leaving(self, point: str) -> bool:
        return self.kinds.get(point) in LEAVING_KINDS or bool(USER_MOUNT_PLACES.match(point))


def file_sensor_roots(config: Config, watch_roots: list[str], *, marks: bool) -> list[str]:
    """What the inotify file sensor watches from the start.

    With filesystem marks, nothing (it takes only the mounts the marks cannot cover). Without, the watch
    roots (the agent's scope: every person's copy places in system mode), and in user mode the user's whole
    home as well: a copy is seen wherever the user can write it (limits reached become polling and "reduced
    coverage")."""
    if marks:
        return []
    roots = watch_roots
    if config.mode == "user":
        roots = drop_nested(existing([*roots, home()]))
    return roots
