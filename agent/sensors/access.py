"""Access sensor (Linux, root): fanotify marks on the protected model files, with the accessing pid.

Each protected file gets an inode mark, so the kernel filters: a `pip install` storm of 10,000 opens a
second on other files never reaches us. Opens are taken as FAN_OPEN_PERM permission events: the opener
waits (microseconds) while we snapshot it, so even a process that exits right after is named with its
exe, command line, user and parent chain. We always answer "allow": this is a monitor, not a gate.

While a file stays open, its session is sampled (fd position in /proc/<pid>/fdinfo, /proc/<pid>/maps) on
each read notification and every `sample_seconds`; the close notification then reports bytes read
(position, else the process's rchar growth when it is still alive) and whether it was memory-mapped.

The agent's own reads (hashing) carry our pid and are answered and dropped at once. A queue overflow is
counted, reported, and handed to `on_overflow` so the agent rescans; the processes that hold a protected
file open at that moment are found from their open files, so a reader whose open was lost is still named.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.processes import ProcessCache, fd_positions, io_counters, maps_file, open_holders
from weightwarden.agent.sensors import fanotify as fan
from weightwarden.agent.sensors.base import Counters, SensorStatus, SensorThread, privilege
from weightwarden.agent.sensors.files import SensorHealth

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class AccessObservation:
    kind: str  # opened | read | written
    path: str
    device: int
    inode: int
    size: int | None
    process: ProcessInfo
    bytes_read: int | None = None
    bytes_read_source: str | None = None  # fd-position | process-io | None (unmeasured)
    mapped: bool | None = None
    seconds_open: float | None = None
    seen_monotonic: float = 0.0


@dataclass(frozen=True, slots=True)
class AccessOverflow:
    """The kernel's access queue overflowed: accesses were lost (what was protected must be looked at again)."""


@dataclass(slots=True)
class _Session:
    pid: int
    key: tuple[int, int]
    path: str
    size: int | None
    process: ProcessInfo
    opened: float
    rchar_at_open: int | None
    opens: int = 1
    max_position: int = 0
    positioned: bool = False
    mapped: bool = False
    last_sample: float = 0.0
    reads: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class AccessSensor:
    name = "access"

    def __init__(self, cache: ProcessCache, sink: Callable[[AccessObservation], None],
                 on_health: Callable[[SensorHealth], None], on_overflow: Callable[[], None] | None = None,
                 *, hold_opens: bool = True) -> None:
        self.cache = cache
        self._sink = sink
        self._on_health = on_health
        self._on_overflow = on_overflow
        self._hold_opens = hold_opens
        self.counters = Counters()
        self._fd = -1
        self._own = os.getpid()
        self._marks: dict[tuple[int, int], str] = {}
        self._marks_lock = threading.Lock()
        self._sessions: dict[tuple[int, tuple[int, int]], _Session] = {}
        self._rchar_at_open: dict[int, int | None] = {}
        self._thread = SensorThread("ww-fanotify", self._run)
        self._state = "stopped"
        self._message = ""
        self._open_mask = fan.FAN_OPEN_PERM
        self.mark_errors = 0
        self.ignored_own = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        base = fan.FAN_CLOEXEC | fan.FAN_NONBLOCK
        try:
            if not self._hold_opens:
                raise OSError(errno.EINVAL, "permission events not wanted")
            self._fd = fan.init(base | fan.FAN_CLASS_CONTENT)
            self._message = "fanotify inode marks; opens held while the opener is snapshotted"
        except OSError:
            self._fd = fan.init(base | fan.FAN_CLASS_NOTIF)
            self._open_mask = fan.FAN_OPEN
            self._message = "fanotify inode marks (no permission events: very short processes may be missed)"
        self._state = "running"
        self._thread.start()
        self._on_health(SensorHealth(self.name, "running", self._message))

    def stop(self) -> None:
        self._thread.stop()
        if self._fd >= 0:
            os.close(self._fd)  # also releases any open still waiting on us
            self._fd = -1
        self._state = "stopped"

    def status(self) -> SensorStatus:
        with self._marks_lock:
            marked = len(self._marks)
        return SensorStatus(self.name, self._state, "fanotify", privilege(),
                            f"{self._message}; {marked} files marked, {len(self._sessions)} open now"
                            + (f", {self.mark_errors} files could not be marked" if self.mark_errors else ""),
                            self.counters.events, self.counters.rate(), self.counters.drops,
                            self.queued())

    def queued(self) -> int:
        """Events waiting in the kernel's queue for us (FIONREAD: their bytes; each record is 24 bytes)."""
        if self._fd < 0:
            return 0
        size = bytearray(4)
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, size)
        except OSError:
            return 0
        return int.from_bytes(size, sys.byteorder) // fan.METADATA.size

    def pause(self) -> None:
        """Stop reading events until resume() (tests: make the agent look only after a process is gone).
        Never pause with permission events on: openers of protected files would wait."""
        self._thread.pause()

    def resume(self) -> None:
        self._thread.resume()

    @property
    def marked(self) -> dict[tuple[int, int], str]:
        with self._marks_lock:
            return dict(self._marks)

    # ------------------------------------------------------------------ marks

    def protect(self, paths: Iterable[str]) -> None:
        """Make the marks match `paths` (the protected model files); cheap when nothing changed."""
        if self._fd < 0:
            return
        wanted: dict[tuple[int, int], str] = {}
        for path in paths:
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            wanted[(st.st_dev, st.st_ino)] = path
        mask = self._open_mask | fan.FAN_ACCESS | fan.FAN_CLOSE_WRITE | fan.FAN_CLOSE_NOWRITE
        with self._marks_lock:
            for key, path in wanted.items():
                if key in self._marks:
                    self._marks[key] = path
                    continue
                try:
                    fan.mark(self._fd, fan.FAN_MARK_ADD | fan.FAN_MARK_DONT_FOLLOW, mask, path)
                    self._marks[key] = path
                except OSError as error:
                    self.mark_errors += 1
                    log.warning("cannot watch access to %s: %s", path, error)
            for key in [k for k in self._marks if k not in wanted]:
                path = self._marks.pop(key)
                # gone or replaced: the kernel dropped the mark with the inode
                with contextlib.suppress(OSError):
                    fan.mark(self._fd, fan.FAN_MARK_REMOVE | fan.FAN_MARK_DONT_FOLLOW, mask, path)

    # ------------------------------------------------------------------ events

    def _run(self) -> None:
        thread = self._thread
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(thread.waker.fileno(), select.POLLIN)
        while not thread.stopping.is_set():
            if not thread.wait_resumed(0.2):
                continue
            try:  # idle: sleep until an event (or stop); with files open, wake to sample them
                ready = [fd for fd, _ in poller.poll(SAMPLE_SECONDS * 1000 if self._sessions else 30_000)]
            except InterruptedError:
                continue
            if thread.waker.fileno() in ready:
                thread.waker.drain()
            if thread.paused:
                continue  # paused while we waited: leave the events queued
            if self._fd in ready:
                try:
                    data = os.read(self._fd, 256 * 1024)
                except BlockingIOError:
                    data = b""
                except OSError as error:
                    log.warning("fanotify read failed: %s", error)
                    data = b""
                for event in fan.parse(data):
                    answered = False
                    try:
                        answered = self._handle(event)
                    except Exception:  # answer and close whatever happens; never stall an opener
                        log.exception("access event failed")
                    finally:
                        self._release(event, answered)
            self._sample_all()

    def _release(self, event: fan.FanotifyEvent, answered: bool) -> None:
        if event.fd < 0:
            return
        if event.mask & fan.FAN_OPEN_PERM and not answered:
            try:
                fan.allow(self._fd, event.fd)
            except OSError as error:
                log.warning("fanotify allow failed: %s", error)
        os.close(event.fd)

    def _handle(self, event: fan.FanotifyEvent) -> bool:
        """Handle one event; True when a permission event was already answered."""
        if event.mask & fan.FAN_Q_OVERFLOW:
            self.counters.drop()
            self._on_health(SensorHealth(self.name, "degraded",
                                         "fanotify queue overflowed: accesses were lost; rescanning protected roots"))
            if self._on_overflow is not None:
                self._on_overflow()
            self._recover_holders(time.monotonic())
            return False
        if event.pid == self._own:
            self.ignored_own += 1
            return False  # our own hashing (answered by _release)
        st = os.fstat(event.fd)
        key = (st.st_dev, st.st_ino)
        with self._marks_lock:
            path = self._marks.get(key)
        if path is None:
            try:
                path = os.readlink(f"/proc/self/fd/{event.fd}").removesuffix(" (deleted)")
            except OSError:
                return False
        now = time.monotonic()
        answered = False
        if event.mask & fan.FAN_OPEN_PERM:
            # The opener waits for our answer: take its snapshot (the part that cannot wait), answer, and
            # only then do the rest (parent chain, fd sampling) while it runs on.
            self.cache.remember(event.pid)
            io = io_counters(event.pid)  # before it can read: the baseline of what it reads from here on
            self._rchar_at_open[event.pid] = io.get("rchar") if io else None
            fan.allow(self._fd, event.fd)
            answered = True
            event = fan.FanotifyEvent(event.mask & ~fan.FAN_OPEN_PERM | fan.FAN_OPEN, event.fd, event.pid)
        if event.mask & fan.FAN_OPEN:
            self.counters.add()
            self._opened(event.pid, key, path, st.st_size, now)
        if event.mask & fan.FAN_ACCESS:
            session = self._sessions.get((event.pid, key))
            if session is not None:
                session.reads += 1
                if now - session.last_sample > 0.02:
                    self._sample(session, now, maps=False)
        if event.mask & (fan.FAN_CLOSE_WRITE | fan.FAN_CLOSE_NOWRITE):
            self.counters.add()
            self._closed(event.pid, key, path, st.st_size, bool(event.mask & fan.FAN_CLOSE_WRITE), now)
        return answered

    def _recover_holders(self, now: float) -> None:
        """After lost events: whoever holds a protected file open now gets a session (and an `opened`)."""
        by_path = {path: key for key, path in self.marked.items()}
        for path, pids in open_holders(by_path).items():
            key = by_path[path]
            for pid in pids:
                if (pid, key) not in self._sessions:
                    size = self._size(path)
                    self._opened(pid, key, path, size, now)

    @staticmethod
    def _size(path: str) -> int | None:
        try:
            return os.stat(path).st_size
        except OSError:
            return None

    def _opened(self, pid: int, key: tuple[int, int], path: str, size: int | None, now: float) -> None:
        session = self._sessions.get((pid, key))
        if session is not None:
            session.opens += 1
            return  # a second descriptor on the same file by the same process: one session
        process = self.cache.process_info(pid, wait=0.05)
        if pid in self._rchar_at_open:
            rchar = self._rchar_at_open.pop(pid)
        else:
            io = io_counters(pid)
            rchar = io.get("rchar") if io else None
        session = _Session(pid, key, path, size, process, now, rchar)
        self._sessions[(pid, key)] = session
        self._sample(session, now, maps=False)
        self._sink(AccessObservation("opened", path, key[0], key[1], size, process, seen_monotonic=now))

    def _closed(self, pid: int, key: tuple[int, int], path: str, size: int, wrote: bool, now: float) -> None:
        session = self._sessions.get((pid, key))
        if session is not None:
            session.opens -= 1
            if session.opens > 0:
                return
            del self._sessions[(pid, key)]
        else:  # closed by another process (inherited descriptor): take any session on this file
            others = [s for (p, k), s in self._sessions.items() if k == key]
            session = others[0] if others else None
            if session is not None:
                del self._sessions[(session.pid, key)]
        if session is None:  # opened before we marked it
            process = self.cache.process_info(pid, wait=0.05)
            self._sink(AccessObservation("written" if wrote else "read", path, key[0], key[1], size, process,
                                         seen_monotonic=now))
            return
        bytes_read, source = self._bytes_read(session, pid)
        self._sink(AccessObservation(
            "written" if wrote else "read", path, key[0], key[1], size, session.process,
            bytes_read=bytes_read, bytes_read_source=source, mapped=session.mapped,
            seconds_open=round(now - session.opened, 3), seen_monotonic=now))

    def _bytes_read(self, session: _Session, pid: int) -> tuple[int | None, str | None]:
        best, source = (session.max_position, "fd-position") if session.positioned else (None, None)
        io = io_counters(pid) if session.rchar_at_open is not None else None
        total, how = (io.get("rchar"), "process-io") if io is not None else (None, None)
        if total is None and session.rchar_at_open is not None:
            # Gone already (a `cat` reaped by its shell): the kernel's exit accounting still says what it read.
            total, how = self.cache.exit_read_chars(pid, wait=0.1), "exit-io"
        if total is not None and session.rchar_at_open is not None:
            # Everything the process read since the open: an upper bound when it read other files too.
            grown = max(0, total - session.rchar_at_open)
            if session.size is not None:
                grown = min(grown, session.size)
            if best is None or grown > best:
                best, source = grown, how
        return best, source

    # ------------------------------------------------------------------ sampling

    def _sample_all(self) -> None:
        now = time.monotonic()
        for session in list(self._sessions.values()):
            age = now - session.opened
            interval = SAMPLE_SECONDS if age < 10 else 2.0
            if now - session.last_sample >= interval:
                self._sample(session, now, maps=not session.mapped)
            if age > 5 and not os.path.exists(f"/proc/{session.pid}"):
                self._sessions.pop((session.pid, session.key), None)  # its close went to another process

    def _sample(self, session: _Session, now: float, *, maps: bool) -> None:
        session.last_sample = now
        positions = fd_positions(session.pid, *session.key)
        if positions and max(pos for _, pos in positions) > 0:  # at 0 it has not read yet: no measurement
            session.positioned = True
            session.max_position = max(session.max_position, *(pos for _, pos in positions))
        if maps and maps_file(session.pid, *session.key):
            session.mapped = True

    def session_view(self) -> list[dict[str, object]]:
        """Open sessions, for status and tests."""
        return [{"pid": s.pid, "path": s.path, "mapped": s.mapped, "max_position": s.max_position,
                 "positioned": s.positioned} for s in list(self._sessions.values())]
