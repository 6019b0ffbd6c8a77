"""fs-writes sensor: every file written, created, renamed or deleted on every local filesystem, with the
writer's pid, as FileObservation values (system mode, root, Linux). It decides nothing.

One fanotify group with file-id reporting (FAN_REPORT_DFID_NAME) holds a FAN_MARK_FILESYSTEM mark per
filesystem: close-after-write, rename (FAN_RENAME: the old and the new name in one event; on kernels
before 5.17 moved-from/moved-to, reported as a deletion and a creation) and delete, directories included
(FAN_ONDIR). No tree is walked and no directory watched: a file written anywhere (a home folder nobody
configured, a stick, a share, a container's upper layer) is reported. Creations are not asked for: every
copy ends with a close after writing, which is when the file can be examined, and a new directory's files
each report their own close; the creation events would double the work of every `tar -x` or `pip
install` for no news (a file held open for writing is seen when it is closed). An event names its directory
by file handle plus the entry's raw name; the handle is opened (open_by_handle_at, CAP_DAC_READ_SEARCH)
through the one mount that shows the filesystem's whole tree and read back as a path from /proc/self/fd,
once per directory per read; no descriptor on a mount is kept (it would make `umount` of a stick fail).
Paths are str by os.fsdecode: a non-UTF-8 name keeps its bytes.

Filesystems come from the mount table (agent/sensors/filesystems.py): pseudo filesystems are skipped,
bind mounts and overlays of one filesystem are counted once (same device). `resync()` (the agent calls it
on every mount observation, through add_mount/remove_mount) marks what appeared and forgets what left; it
runs on the sensor's own marking thread, so a mount point that hangs (an unreachable share) never blocks
the caller. Where a filesystem cannot be marked with file ids (EOPNOTSUPP, EXDEV, ENODEV, EINVAL) or its
handles do not resolve, and on FUSE, the mount is handed back as a `MarkFallback` (the agent watches it
with the inotify file sensor) and said in status and a health report. A mount newly covered is announced
as `WatchStarted` (the agent rescans sticks, shares and images it had not seen).

A queue overflow is one `FsWritesOverflow` observation naming the marked mounts (counted as a drop, with a
health report): the agent rescans what they hold. Events of the agent's own process are dropped here (its
database, its cache, its data dir).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import queue
import select
import sys
import termios
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.processes import user_name
from weightwarden.agent.sensors import fanotify as fan
from weightwarden.agent.sensors.base import Counters, SensorStatus, SensorThread, privilege
from weightwarden.agent.sensors.files import FileObservation, SensorHealth, WatchStarted
from weightwarden.agent.sensors.filesystems import (
    MountEntry,
    by_device,
    is_fuse,
    overlay_layers,
    read_entries,
    whole_tree_first,
)

log = logging.getLogger(__name__)

READ_BYTES = 256 * 1024
GATHER_SECONDS = 0.01
INIT_FLAGS = fan.FAN_CLOEXEC | fan.FAN_NONBLOCK | fan.FAN_CLASS_NOTIF | fan.FAN_REPORT_DFID_NAME
BASE_MASK = fan.FAN_CLOSE_WRITE | fan.FAN_DELETE | fan.FAN_ONDIR
RENAME_MASK = BASE_MASK | fan.FAN_RENAME
MOVES_MASK = BASE_MASK | fan.FAN_MOVED_FROM | fan.FAN_MOVED_TO  # kernels before 5.17
# mark errors that mean "this filesystem cannot report file ids": watch it another way
NO_FID = (errno.EOPNOTSUPP, errno.EXDEV, errno.ENODEV, errno.EINVAL, errno.ENOSYS, errno.ESTALE)


@dataclass(frozen=True, slots=True)
class MarkFallback:
    """A mount the fs-writes sensor cannot cover: the agent watches it with the inotify file sensor."""

    mount_point: str
    fstype: str
    reason: str


@dataclass(frozen=True, slots=True)
class FsWritesOverflow:
    """The kernel's queue overflowed: writes were lost on these mounts (every marked one: the queue is
    shared), so what they hold must be looked at again."""

    mount_points: tuple[str, ...]


@dataclass(slots=True)
class MarkedFilesystem:
    device: str
    fsid: int
    fstype: str
    resolve_through: str  # the mount point showing its whole tree
    mount_points: list[str] = field(default_factory=list)


def unavailable() -> str | None:
    """Why filesystem marks with file ids cannot be used here, or None (probes with a throwaway group)."""
    why = fan.unavailable()
    if why is not None:
        return why
    try:
        os.close(fan.init(INIT_FLAGS))
    except OSError as error:
        return f"fanotify file-id reporting unavailable (Linux 5.9+): {error.strerror or error}"
    return None


class FsWriteSensor:
    name = "fs-writes"

    def __init__(self, sink: Callable[[object], None], on_health: Callable[[SensorHealth], None], *,
                 ignore_pids: Iterable[int] = (), mountinfo: str = "/proc/self/mountinfo",
                 who: Callable[[int], ProcessInfo] | None = None,
                 wanted: Callable[[str, int], bool] | None = None,
                 wanted_gone: Callable[[str, bool], bool] | None = None,
                 wanted_writer: Callable[[int], bool] | None = None, unlimited_queue: bool = True) -> None:
        """`who`: the process of a pid (the process cache), asked when a write is closed, while the writer is
        most likely still running (a copy's `cp` exits right after): once per pid per read of the queue, so a
        `tar -x` of 100,000 files costs a handful of lookups. `wanted(path, size)`: the file pipeline's
        answer to whether a closed file can matter (agent/pipeline/files.py worth_examining): the closes it
        does not want are counted, not handed over; `wanted_gone(path, is_directory)` the same for deletions
        (worth_a_deletion: only what the inventory holds). `wanted_writer(pid)`: closes by this writer are
        handed over whatever `wanted` says (a process of a flow that read a protected model: its small
        outputs count too, agent/pipeline/flows.py), and so are its deletions (a file it deletes while it
        still writes it is measured through its descriptor).

        `unlimited_queue`: the kernel's queue is not capped at fs.fanotify.max_queued_events (16,384): an
        `rm -rf` of 100,000 files outruns any reader for a moment, and a bounded queue would then drop the
        writes made beside it, a blind spot anyone could open at will. The queued events are charged to the
        agent's memory cgroup; an allocation that fails there still ends as an overflow. (False: tests that
        make a real overflow with a small queue.)"""
        self._sink = sink
        self._who = who
        self._wanted = wanted
        self._wanted_gone = wanted_gone
        self._wanted_writer = wanted_writer
        self._unlimited_queue = unlimited_queue
        self.not_wanted = 0
        self._on_health = on_health
        self._ignored = frozenset({os.getpid(), *ignore_pids})
        self._mountinfo = mountinfo
        self.counters = Counters()
        self._fd = -1
        self._mask = RENAME_MASK
        self._lock = threading.Lock()  # the tables below: changed by the marking thread, read by the reader
        self._by_device: dict[str, MarkedFilesystem] = {}
        self._by_fsid: dict[int, MarkedFilesystem] = {}
        self.fallbacks: dict[str, tuple[str, str]] = {}  # mount point -> (fstype, why)
        # Overlays: (upper folder, work folder, mount point). A write through an overlay lands in its upper
        # folder, on a marked filesystem, under overlay's own work names first: it is reported by the path
        # people see (the overlay's), once, and the work folder's shuffles not at all.
        self._overlays: tuple[tuple[str, str | None, str], ...] = ()
        self._gate = threading.Lock()  # held while delivering; stop() closes it
        self._open = False
        self._state = "stopped"
        self._thread = SensorThread("ww-fs-writes", self._run)
        self._requests: queue.Queue[bool] = queue.Queue()
        self._marker: threading.Thread | None = None
        self.ignored_own = 0
        self.unresolved = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Mark every local filesystem in the mount table, then start reading. OSError without FID support."""
        self._fd = fan.init(INIT_FLAGS | (fan.FAN_UNLIMITED_QUEUE if self._unlimited_queue else 0))
        with self._gate:
            self._open = True
        self._state = "running"
        self._sync()
        self._thread.start()
        self._marker = threading.Thread(target=self._mark_loop, name="ww-fs-marks", daemon=True)
        self._marker.start()
        with self._lock:
            marked = len(self._by_device)
        self._health("running", f"{marked} filesystems marked" + (
            f"; {len(self.fallbacks)} mounts on the inotify fallback" if self.fallbacks else ""))

    def stop(self) -> None:
        with self._gate:  # waits for a delivery in progress; none after this
            self._open = False
        self._requests.put(False)
        if self._marker is not None:
            self._marker.join(timeout=10)
            self._marker = None
        self._thread.stop()
        self._state = "stopped"
        if self._fd >= 0:
            os.close(self._fd)  # the kernel drops every mark with the group
            self._fd = -1
        with self._lock:
            self._by_device.clear()
            self._by_fsid.clear()
            self.fallbacks.clear()

    def pause(self) -> None:
        """Leave events in the kernel's queue until resume() (tests: a real overflow)."""
        self._thread.pause()

    def resume(self) -> None:
        self._thread.resume()

    def add_mount(self, mount_point: str) -> None:
        """A mount appeared: mark its filesystem (on the marking thread; it may hang on a dead share)."""
        self._requests.put(True)

    def remove_mount(self, mount_point: str) -> None:
        """A mount went: forget it (the kernel drops a filesystem's mark when its last mount goes)."""
        self._requests.put(True)

    @property
    def filesystems(self) -> list[MarkedFilesystem]:
        with self._lock:
            return sorted(self._by_device.values(), key=lambda f: f.resolve_through)

    def status(self) -> SensorStatus:
        with self._lock:
            marked = [f"{f.resolve_through} ({f.fstype}"
                      + (f", also at {', '.join(p for p in f.mount_points if p != f.resolve_through)}"
                         if len(f.mount_points) > 1 else "") + ")"
                      for f in sorted(self._by_device.values(), key=lambda f: f.resolve_through)]
            fallbacks = [f"{point} ({fstype}: {why})" for point, (fstype, why) in sorted(self.fallbacks.items())]
        message = f"{len(marked)} filesystems marked: {', '.join(marked) or 'none'}"
        if fallbacks:
            message += f"; inotify fallback for {len(fallbacks)}: {', '.join(fallbacks)}"
        if self.counters.drops:
            message += f"; {self.counters.drops} queue overflows (rescanned)"
        if self.unresolved:
            message += f"; {self.unresolved} events in directories gone before they were read"
        if self.not_wanted:
            message += f"; {self.not_wanted} closes and deletions that cannot matter (small, not inventoried)"
        return SensorStatus(self.name, self._state, "fanotify-fid", privilege(), message, self.counters.events,
                            self.counters.rate(), self.counters.drops, self.queued())

    def queued(self) -> int:
        """Bytes waiting in the kernel's queue over a typical event's size (metadata + one name record)."""
        if self._fd < 0:
            return 0
        size = bytearray(4)
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, size)
        except OSError:
            return 0
        return int.from_bytes(size, sys.byteorder) // 64

    # ------------------------------------------------------------------ marks

    def _mark_loop(self) -> None:
        while True:
            wanted = self._requests.get()
            while not self._requests.empty():  # one resync covers every request made meanwhile
                wanted = wanted and self._requests.get_nowait()
            if not wanted:
                return
            try:
                self._sync()
            except Exception:
                log.exception("fs-writes: marking new mounts failed")

    def resync(self) -> None:
        """Bring the marks in line with the mount table now (on the caller's thread; tests)."""
        self._sync()

    def _sync(self) -> None:
        entries = read_entries(self._mountinfo)
        overlays = []
        for entry in entries:
            if entry.fstype == "overlay":
                layers = overlay_layers(entry.super_options)
                if layers.upper:
                    overlays.append((layers.upper.rstrip("/") + "/", layers.work.rstrip("/") + "/"
                                     if layers.work else None, entry.mount_point.rstrip("/") + "/"))
        with self._lock:
            self._overlays = tuple(overlays)
        grouped = by_device(entries)
        started: list[tuple[str, str]] = []
        with self._lock:
            known, fallbacks = dict(self._by_device), dict(self.fallbacks)
        for device, entries in grouped.items():
            marked = known.get(device)
            if marked is not None:
                points = [e.mount_point for e in entries]
                started += [(p, "fanotify") for p in points if p not in marked.mount_points]
                best = whole_tree_first(entries).mount_point
                with self._lock:
                    marked.mount_points = points
                    marked.resolve_through = best
                continue
            fresh = [e for e in entries if e.mount_point not in fallbacks]
            if not fresh:
                continue
            started += self._mark(device, fresh)
        present = {e.mount_point for entries in grouped.values() for e in entries}
        with self._lock:
            for device in [d for d in self._by_device if d not in grouped]:
                gone = self._by_device.pop(device)
                if self._by_fsid.get(gone.fsid) is gone:
                    del self._by_fsid[gone.fsid]
            for point in [p for p in self.fallbacks if p not in present]:
                del self.fallbacks[point]
        for point, method in started:
            self._deliver(WatchStarted(point, method))

    def _mark(self, device: str, entries: list[MountEntry]) -> list[tuple[str, str]]:
        """Mark one filesystem; the mount points now covered, or [] after reporting a fallback."""
        best = whole_tree_first(entries)
        if is_fuse(best.fstype):
            return self._fallback(entries, "FUSE: its file handles are the daemon's and may not resolve")
        try:
            fsid = os.statvfs(best.mount_point).f_fsid
            fan.mark(self._fd, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, self._mask, best.mount_point)
        except OSError as error:
            if error.errno == errno.EINVAL and self._mask == RENAME_MASK:
                self._mask = MOVES_MASK  # no FAN_RENAME before Linux 5.17: moves come as two halves
                return self._mark(device, entries)
            if error.errno in NO_FID:
                return self._fallback(entries, f"no file-id marks ({error.strerror or error})")
            log.warning("fs-writes: cannot mark %s: %s", best.mount_point, error)
            return []  # gone meanwhile, or unreadable: nothing anyone could watch there
        with self._lock:
            clash = self._by_fsid.get(fsid)
        if clash is not None:
            self._unmark(best.mount_point)
            return self._fallback(entries, f"same filesystem id as {clash.resolve_through}: events could not "
                                           "be told apart")
        why = _resolvable(best.mount_point)
        if why is not None:
            self._unmark(best.mount_point)
            return self._fallback(entries, f"its file handles do not resolve ({why})")
        marked = MarkedFilesystem(device, fsid, best.fstype, best.mount_point, [e.mount_point for e in entries])
        with self._lock:
            self._by_device[device] = marked
            self._by_fsid[fsid] = marked
        return [(e.mount_point, "fanotify") for e in entries]

    def _unmark(self, path: str) -> None:
        with contextlib.suppress(OSError):
            fan.mark(self._fd, fan.FAN_MARK_REMOVE | fan.FAN_MARK_FILESYSTEM, self._mask, path)

    def _fallback(self, entries: list[MountEntry], why: str) -> list[tuple[str, str]]:
        for entry in entries:
            with self._lock:
                self.fallbacks[entry.mount_point] = (entry.fstype, why)
            self._deliver(MarkFallback(entry.mount_point, entry.fstype, why))
            self._health("degraded", f"{entry.mount_point} ({entry.fstype}): {why}; watched with inotify "
                                     "instead (no writer pid)")
        return []

    # ------------------------------------------------------------------ events

    def _run(self) -> None:
        thread, fd = self._thread, self._fd
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(thread.waker.fileno(), select.POLLIN)
        while not thread.stopping.is_set():
            if not thread.wait_resumed(0.2):
                continue
            try:
                ready = [ready_fd for ready_fd, _ in poller.poll()]
            except InterruptedError:
                continue
            if thread.waker.fileno() in ready:
                thread.waker.drain()
            if thread.paused or thread.stopping.is_set():
                continue  # paused while we waited: leave the events queued
            if fd in ready:
                # Let a burst gather before reading it: a writer whose events find us asleep pays no wake-up,
                # and one read then parses hundreds of events with one directory lookup each.
                if thread.stopping.wait(GATHER_SECONDS):
                    break
                try:
                    data = os.read(fd, READ_BYTES)
                except BlockingIOError:
                    continue
                except OSError as error:
                    log.warning("fanotify read failed: %s", error)
                    continue
                try:
                    self._handle_batch(data)
                except Exception:  # one odd batch must not end the reading thread
                    log.exception("fs-writes events failed")

    def _handle_batch(self, data: bytes) -> None:
        resolver = _Resolver(self._filesystem)
        self._writers: dict[int, ProcessInfo | None] = {}
        for event in fan.parse_fid(data):
            if event.mask & fan.FAN_Q_OVERFLOW:
                self._overflowed()
            elif event.pid in self._ignored:
                self.ignored_own += 1
            else:
                self._handle(event, resolver)

    def _filesystem(self, fsid: int) -> MarkedFilesystem | None:
        with self._lock:
            return self._by_fsid.get(fsid)

    def _handle(self, event: fan.FidEvent, resolver: _Resolver) -> None:
        mask, pid = event.mask, event.pid
        is_directory = bool(mask & fan.FAN_ONDIR)
        if mask & fan.FAN_RENAME:
            old = resolver.path(_record(event, fan.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME))
            new = resolver.path(_record(event, fan.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME))
            if old is not None and new is not None:
                self._emit("moved", old, new, is_directory, pid)
            elif new is not None:  # its old directory is gone already: a name appeared
                self._emit("created", new, None, is_directory, pid)
            elif old is not None:
                self._emit("deleted", old, None, is_directory, pid)
            else:
                self.unresolved += 1
            return
        path = resolver.path(_record(event, fan.FAN_EVENT_INFO_TYPE_DFID_NAME))
        if path is None:
            self.unresolved += 1
            return
        deleted = bool(mask & (fan.FAN_DELETE | fan.FAN_MOVED_FROM))
        if (deleted and not mask & (fan.FAN_MOVED_TO | fan.FAN_CLOSE_WRITE) and self._wanted_gone is not None
                and not self._wanted_gone(path, is_directory)
                and not self._by_wanted_writer(pid)):  # a deletion alone, of nothing we hold
            self.not_wanted += 1
            return
        if deleted and not os.path.lexists(path):  # whatever else was merged into it is over
            self._emit("deleted", path, None, is_directory, pid)
            return
        if deleted:  # deleted, then made again under the same name (the kernel merged the two)
            self._emit("deleted", path, None, is_directory, pid)
        if mask & fan.FAN_MOVED_TO:
            self._emit("created", path, None, is_directory, pid)
        if mask & fan.FAN_CLOSE_WRITE and not is_directory:
            try:
                info: os.stat_result | None = os.stat(path, follow_symlinks=False)
            except OSError:
                info = None  # gone already: the pipeline finds out
            if (info is not None and self._wanted is not None and not self._wanted(path, info.st_size)
                    and not self._by_wanted_writer(pid)):
                self.not_wanted += 1
                return
            self._emit("closed", path, None, False, pid, info.st_size if info else None,
                       self._writer(pid, info.st_uid if info else None))

    def _by_wanted_writer(self, pid: int) -> bool:
        """Whether the event's process is one whose writes and deletions are all wanted (a tainted flow's: a
        file it deletes may be one it still holds open and writes)."""
        return self._wanted_writer is not None and self._wanted_writer(pid)

    def _overflowed(self) -> None:
        self.counters.drop()
        with self._lock:
            points = tuple(sorted(p for f in self._by_device.values() for p in f.mount_points))
        self._health("degraded", "fanotify queue overflowed: writes were lost; rescanning what the marked "
                                 "filesystems protect")
        self._deliver(FsWritesOverflow(points))

    # ------------------------------------------------------------------ delivery

    def _emit(self, kind: str, path: str, dest: str | None, is_directory: bool, pid: int,
              size: int | None = None, process: ProcessInfo | None = None) -> None:
        if self._overlays:
            seen, seen_dest = self._through_overlay(path), self._through_overlay(dest) if dest else None
            if kind == "moved" and seen is None and seen_dest is not None:  # out of the work folder: appeared
                kind, seen, seen_dest = "created", seen_dest, None
            elif kind == "moved" and seen is not None and seen_dest is None:  # into the work folder: gone
                kind = "deleted"
            if seen is None:
                return
            path, dest = seen, seen_dest
        if kind == "deleted" and self._wanted_gone is not None and not self._wanted_gone(path, is_directory) \
                and not self._by_wanted_writer(pid):
            self.not_wanted += 1
            return
        self.counters.add()
        self._deliver(FileObservation(kind, path, dest, is_directory, pid=pid, size=size, process=process))

    def _through_overlay(self, path: str) -> str | None:
        """The path as the overlay shows it when it lies in an overlay's upper folder; None in its work
        folder; else unchanged."""
        for upper, work, merged in self._overlays:
            if work is not None and path.startswith(work):
                return None
            if path.startswith(upper):
                return merged + path[len(upper):]
            if path + "/" == upper:
                return merged.rstrip("/")
        return path

    def _writer(self, pid: int, owner: int | None) -> ProcessInfo | None:
        """The writer; when it had already exited and is remembered with another user (or none) than the
        file's owner, the owner is who wrote it: a new file belongs to its creator's user, and a process
        remembered from before its last exec (setpriv, su, sudo switch users, then exec) is stale there."""
        if self._who is None:
            return None
        if pid not in self._writers:
            try:
                self._writers[pid] = self._who(pid)
            except Exception:  # naming is a courtesy: the write is reported whatever happens here
                log.exception("could not name writer %d", pid)
                self._writers[pid] = None
        process = self._writers[pid]
        if process is not None and owner is not None and process.uid != owner and (process.exited or
                                                                                   process.uid is None):
            return replace(process, uid=owner, user=user_name(owner))
        return process

    def _deliver(self, observation: object) -> None:
        with self._gate:
            if not self._open:
                return
            try:
                self._sink(observation)
            except Exception:  # the reading thread carries on whatever the receiver does
                log.exception("fs-writes observation failed")

    def _health(self, status: str, message: str) -> None:
        with self._gate:
            if not self._open:
                return
            try:
                self._on_health(SensorHealth(self.name, status, message))
            except Exception:
                log.exception("fs-writes health report failed")


class _Resolver:
    """Directory handles -> paths for one read of the queue: one open_by_handle_at per directory. The mount
    descriptor it needs is opened and closed around each call, never held: an open descriptor on a mount
    makes `umount` fail with "target is busy", and the user ejecting a stick must not meet us."""

    def __init__(self, filesystem: Callable[[int], MarkedFilesystem | None]) -> None:
        self._filesystem = filesystem
        self._dirs: dict[tuple[int, bytes], bytes | None] = {}

    def path(self, record: fan.FidRecord | None) -> str | None:
        if record is None:
            return None
        key = (record.fsid, record.handle)
        if key not in self._dirs:
            self._dirs[key] = self._directory(record)
        directory = self._dirs[key]
        if directory is None:
            return None
        return os.fsdecode(os.path.join(directory, record.name) if record.name else directory)

    def _directory(self, record: fan.FidRecord) -> bytes | None:
        filesystem = self._filesystem(record.fsid)  # None: a filesystem no longer marked
        if filesystem is None:
            return None
        try:  # not O_PATH: open_by_handle_at refuses such a mount_fd
            mount_fd = os.open(filesystem.resolve_through, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            fd = fan.open_by_handle(mount_fd, record.handle)
        except OSError:  # ESTALE: the directory is gone
            return None
        finally:
            os.close(mount_fd)
        try:
            path = os.readlink(b"/proc/self/fd/%d" % fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        if path.endswith(b" (deleted)") or not path.startswith(b"/"):
            return None
        return path


def _record(event: fan.FidEvent, info_type: int) -> fan.FidRecord | None:
    for record in event.records:
        if record.info_type == info_type:
            return record
    return None


def _resolvable(mount_point: str) -> str | None:
    """Why a handle of this mount's root does not open again through it, or None when it does."""
    try:
        handle = fan.name_to_handle(mount_point)
        mount_fd = os.open(mount_point, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        return error.strerror or str(error)
    try:
        os.close(fan.open_by_handle(mount_fd, handle))
    except OSError as error:
        return error.strerror or str(error)
    finally:
        os.close(mount_fd)
    return None
