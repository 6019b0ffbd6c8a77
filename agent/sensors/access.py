"""Access sensor (Linux, root): fanotify marks on the protected model files, with the accessing pid.

Each protected file gets an inode mark, so the kernel filters: a `pip install` storm of 10,000 opens a
second on other files never reaches us. Opens are taken as FAN_OPEN_PERM permission events: the opener
waits (microseconds) while we snapshot it, so even a process that exits right after is named with its
exe, command line, user and parent chain. Without a `gate` (no access policy in force) we always answer
"allow". With one (agent/access/gate.py), an open of a file a policy governs is decided while it waits: a
refusal under an `enforce` policy fails the open with EPERM and is reported as a `denied` observation; every
other answer goes with the `opened` observation (`verdict`), so monitor mode's would-deny is reported too.
No open waits on us longer than agent/sensors/answers.py's deadline: past it, the answer is allow, and an
`AccessFailOpen` says how many opens went undecided and why. What an open asks for (read, write) is read
from the system call the opening thread is blocked in (agent/access/open_mode.py): held opens come from a
group of their own that reports thread ids, reads and closes from one that reports processes.

While a file stays open, its session is sampled (fd position in /proc/<pid>/fdinfo, /proc/<pid>/maps, and
for a mapped file the resident pages of its mappings in /proc/<pid>/smaps) on each read notification and
every `sample_seconds`; the close notification then reports bytes read (position, else the process's rchar
growth when it is still alive; for a mapped file the most of it ever resident, "mapped-resident") and
whether it was memory-mapped.

The read is the reader's, not the opener's. `gpg -c < model`: the shell's child opens the model (that is
the pid the open names, snapshotted as `sh`), then execs gpg in the same pid, which reads. Each read
notification and the close compare the process with what opened (the process cache hears every exec
through the proc connector: ProcessCache.execs), so the read names gpg and keeps the shell as `opened_by`.
A descriptor inherited by a child (fork after the open; the child reads) gets a session of its own from
the child's first read notification, named after the child; it ends when the child exits or the file's
last descriptor closes.

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
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from weightwarden.agent.access.gate import Gate, Verdict
from weightwarden.agent.events import ProcessInfo, ProcessRef
from weightwarden.agent.processes import (
    ProcessCache,
    ProcessSnapshot,
    fd_positions,
    files_open_for_writing,
    io_counters,
    mapped_resident,
    maps_file,
    open_holders,
    running,
    snapshot,
    thread_group,
)
from weightwarden.agent.sensors import fanotify as fan
from weightwarden.agent.sensors.answers import PermissionAnswers
from weightwarden.agent.sensors.base import Counters, SensorStatus, SensorThread, privilege
from weightwarden.agent.sensors.files import SensorHealth

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.2
SETTLE_SECONDS = 2.0  # at most this long, an ended session waits for news of its process's exec and exit
GONE_SECONDS = 0.3  # a session whose process is gone ends this long after that was seen (its close first)
FINISHED_SECONDS = 30.0  # a session ended early (its reader exited) ignores a close that comes after
FAIL_OPEN_REPORT_SECONDS = 1.0  # undecided opens are reported at most this often, counted


@dataclass(frozen=True, slots=True)
class AccessObservation:
    # opened | read | written | denied (the policy refused the open: it failed with EPERM) | decided (a further
    # open by a process already holding the file, that the policy refused or let in only by break-glass)
    kind: str
    path: str
    device: int
    inode: int
    size: int | None
    process: ProcessInfo
    bytes_read: int | None = None
    bytes_read_source: str | None = None  # fd-position | process-io | exit-io | mapped-resident | None
    mapped: bool | None = None
    seconds_open: float | None = None
    seen_monotonic: float = 0.0
    opened_by: ProcessInfo | None = None  # the opener, when the process that read is another one
    # "opened": the files the opener held open for writing as it opened (`cmd < model > out`: out), read
    # while it waited on the open, so known even if it has exited when the observation is handled
    writes_to: tuple[str, ...] = ()
    verdict: Verdict | None = None  # opened | denied: the access policy's answer, when a policy governs the file


@dataclass(frozen=True, slots=True)
class AccessOverflow:
    """The kernel's access queue overflowed: accesses were lost (what was protected must be looked at again)."""


@dataclass(frozen=True, slots=True)
class AccessFailOpen:
    """Opens of protected files were allowed without a decision (`count` since the last report, and why)."""

    count: int
    reason: str


@dataclass(slots=True)
class _Session:
    pid: int
    key: tuple[int, int]
    path: str
    size: int | None
    process: ProcessInfo
    opened: float
    rchar_at_open: int | None
    opener: ProcessInfo
    execs_at_open: int  # the process cache's exec news for pid when it opened: more since means an exec
    opens: int = 1
    max_position: int = 0
    positioned: bool = False
    mapped: bool = False
    resident: int = 0  # the most of the file ever resident in its mappings (smaps Rss)
    last_sample: float = 0.0
    reads: int = 0
    gone_since: float | None = None  # when sampling first found its process gone
    remains: str | None = None  # the comm its process showed once gone (a zombie still has one)
    inherited: bool = False  # a child reading a descriptor its parent opened: no close of its own comes
    shared: bool = False  # children read through this descriptor: its position counts their reads too
    extra: dict[str, int] = field(default_factory=dict)


def _by_remains(known: ProcessInfo, name: str) -> ProcessInfo:
    """The process `known` after it exec'd a program known only by its name (it was gone before it could be
    looked at): same pid, user and parents, the new name, nothing of the old program's identity."""
    return replace(known, name=name, executable=None, command_line=None, exited=True, executable_sha256=None,
                   program=None, program_sha256=None, interpreter=None, script=None)


@dataclass(slots=True)
class _Ending:
    session: _Session
    kind: str  # read | written
    closed: float
    deadline: float


class AccessSensor:
    name = "access"

    def __init__(self, cache: ProcessCache, sink: Callable[[AccessObservation | AccessFailOpen], None],
                 on_health: Callable[[SensorHealth], None], on_overflow: Callable[[], None] | None = None,
                 *, hold_opens: bool = True, gate: Gate | None = None) -> None:
        self.cache = cache
        self.gate = gate
        self._sink = sink
        self._on_health = on_health
        self._on_overflow = on_overflow
        self._hold_opens = hold_opens
        self.counters = Counters()
        self._fd = -1  # notification group: reads and closes (and opens, without permission events)
        self._perm_fd = -1  # permission group (FAN_REPORT_TID): opens held until answered
        self._own = os.getpid()
        self._marks: dict[tuple[int, int], str] = {}
        self._marks_lock = threading.Lock()
        self._sessions: dict[tuple[int, tuple[int, int]], _Session] = {}
        self._rchar_at_open: dict[int, int | None] = {}
        self._writes_at_open: dict[int, tuple[str, ...]] = {}  # what the opener writes to, seen as it waited
        self._execs_at_open: dict[int, int] = {}
        self._opener: dict[int, ProcessSnapshot | None] = {}  # taken while the open waited for our answer
        self._finished: dict[tuple[int, tuple[int, int]], float] = {}  # sessions ended before their close
        self._ending: deque[_Ending] = deque()  # ended sessions waiting for news of their process (_settle)
        self._thread = SensorThread("ww-fanotify", self._run)
        self._state = "stopped"
        self._message = ""
        self._open_mask = fan.FAN_OPEN_PERM  # FAN_OPEN on the notification group without permission events
        self.mark_errors = 0
        self.ignored_own = 0
        self._answers: PermissionAnswers | None = None
        self._fail_open = 0  # undecided opens not reported yet
        self._fail_open_reason = ""
        self._fail_open_reported = 0.0
        self._fail_open_lock = threading.Lock()
        self.decided = 0
        self.denied = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        # Two groups on the same marks. Held opens come with the opening thread's id (FAN_REPORT_TID): the
        # access an open asks for is read from that thread alone, and its process is looked up while the
        # thread waits (so it is certain). Reads and closes come with process ids: a thread that exits before
        # they are handled is still its process.
        base = fan.FAN_CLOEXEC | fan.FAN_NONBLOCK
        try:
            if not self._hold_opens:
                raise OSError(errno.EINVAL, "permission events not wanted")
            self._perm_fd = fan.init(base | fan.FAN_CLASS_CONTENT | fan.FAN_REPORT_TID)
            self._answers = PermissionAnswers(self._perm_fd, self._undecided)
            self._answers.start()
            self._message = ("fanotify inode marks; opens held while the opener is snapshotted"
                             + (" and decided by the access policy" if self.gate is not None else ""))
        except OSError:
            self._open_mask = fan.FAN_OPEN
            self._message = "fanotify inode marks (no permission events: very short processes may be missed)"
        self._fd = fan.init(base | fan.FAN_CLASS_NOTIF)
        self._state = "running"
        self._thread.start()
        self._on_health(SensorHealth(self.name, "running", self._message))

    def stop(self) -> None:
        self._thread.stop()
        if self._answers is not None:
            self._answers.stop()
        for fd in (self._perm_fd, self._fd):
            if fd >= 0:
                os.close(fd)  # the permission group's close also releases any open still waiting on us
        self._fd = self._perm_fd = -1
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
        """Events waiting in the kernel's queues for us (FIONREAD: their bytes; each record is 24 bytes)."""
        waiting = 0
        for fd in (self._perm_fd, self._fd):
            if fd < 0:
                continue
            size = bytearray(4)
            try:
                fcntl.ioctl(fd, termios.FIONREAD, size)
            except OSError:
                continue
            waiting += int.from_bytes(size, sys.byteorder) // fan.METADATA.size
        return waiting

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

    def is_marked(self, device: int, inode: int) -> bool:
        with self._marks_lock:
            return (device, inode) in self._marks

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
        with self._marks_lock:
            for key, path in wanted.items():
                if key in self._marks:
                    self._marks[key] = path
                    continue
                try:
                    for fd, mask in self._masks():
                        fan.mark(fd, fan.FAN_MARK_ADD | fan.FAN_MARK_DONT_FOLLOW, mask, path)
                    self._marks[key] = path
                except OSError as error:
                    self.mark_errors += 1
                    log.warning("cannot watch access to %s: %s", path, error)
                    self._unmark(path)
            for key in [k for k in self._marks if k not in wanted]:
                self._unmark(self._marks.pop(key))

    def _masks(self) -> list[tuple[int, int]]:
        """(group, event mask) for each of our fanotify groups."""
        seen = fan.FAN_ACCESS | fan.FAN_CLOSE_WRITE | fan.FAN_CLOSE_NOWRITE
        if self._perm_fd < 0:
            return [(self._fd, seen | fan.FAN_OPEN)]
        return [(self._perm_fd, fan.FAN_OPEN_PERM), (self._fd, seen)]

    def _unmark(self, path: str) -> None:
        # gone or replaced: the kernel dropped the mark with the inode
        for fd, mask in self._masks():
            with contextlib.suppress(OSError):
                fan.mark(fd, fan.FAN_MARK_REMOVE | fan.FAN_MARK_DONT_FOLLOW, mask, path)

    # ------------------------------------------------------------------ events

    def _run(self) -> None:
        thread = self._thread
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        if self._perm_fd >= 0:
            poller.register(self._perm_fd, select.POLLIN)
        poller.register(thread.waker.fileno(), select.POLLIN)
        while not thread.stopping.is_set():
            if not thread.wait_resumed(0.2):
                continue
            try:  # idle: sleep until an event (or stop); with files open, wake to sample them
                ready = [fd for fd, _ in poller.poll(
                    50 if self._ending else SAMPLE_SECONDS * 1000 if self._sessions else 30_000)]
            except InterruptedError:
                continue
            if thread.waker.fileno() in ready:
                thread.waker.drain()
            if thread.paused:
                continue  # paused while we waited: leave the events queued
            if self._answers is not None:
                self._answers.busy(time.monotonic())  # from here until idle(), opens queue behind us
                for event in self._answers.take_handed():  # answered for us while we were stuck: still news
                    self._handle_one(event)
            # Held opens are read first and handled last. A read or close read after them belongs to an open
            # answered before (a held one has not happened yet), so it is handled first: a process that
            # closes a file and opens it again ends its old session before its new one begins.
            held = self._read_held() if self._perm_fd in ready else []
            for event in self._read(self._fd) if self._fd in ready else []:
                self._handle_one(event)
            for event in held:
                self._handle_one(event)
            self._report_fail_open(time.monotonic())
            self._sample_all()
            if self._answers is not None:
                self._answers.idle()

    def _read(self, fd: int) -> list[fan.FanotifyEvent]:
        try:
            data = os.read(fd, 256 * 1024)
        except BlockingIOError:
            return []
        except OSError as error:
            log.warning("fanotify read failed: %s", error)
            return []
        return list(fan.parse(data))

    def _read_held(self) -> list[fan.FanotifyEvent]:
        """The permission group's events, each held against the deadline at once and named by its process
        (looked up now, while the opening thread waits and so certainly exists)."""
        events = self._read(self._perm_fd)
        if self._answers is not None:
            read_at = time.monotonic()
            for event in events:
                if event.mask & fan.FAN_OPEN_PERM and event.fd >= 0:
                    self._answers.hold(event.fd, read_at)
        return [replace(event, pid=thread_group(event.pid) or event.pid, tid=event.pid) for event in events]

    def _handle_one(self, event: fan.FanotifyEvent) -> None:
        answered = False
        try:
            answered = self._handle(event)
        except Exception:  # answer and close whatever happens; never stall an opener
            log.exception("access event failed")
            if event.mask & fan.FAN_OPEN_PERM:
                self._undecided(1, "internal error deciding an open")
        finally:
            self._release(event, answered)

    def _release(self, event: fan.FanotifyEvent, answered: bool) -> None:
        if event.fd < 0:
            return
        if event.mask & fan.FAN_OPEN_PERM and not answered:
            unanswered = self._answers.forget(event.fd) if self._answers is not None else True
            if unanswered:
                try:
                    fan.allow(self._perm_fd, event.fd)
                except OSError as error:
                    log.warning("fanotify allow failed: %s", error)
        os.close(event.fd)

    def _answer(self, event_fd: int, allow: bool) -> bool:
        """Answer a held open; False when the deadline's watchdog answered it (allow) already."""
        if self._answers is None:
            (fan.allow if allow else fan.deny)(self._perm_fd, event_fd)
            return True
        return self._answers.answer(event_fd, allow)

    def _undecided(self, count: int, reason: str) -> None:
        """Opens allowed without a decision (called from the watchdog's thread too)."""
        with self._fail_open_lock:
            self._fail_open += count
            self._fail_open_reason = reason
        self._thread.waker.wake()  # to report it, and to handle what the watchdog handed over

    def _report_fail_open(self, now: float) -> None:
        with self._fail_open_lock:
            if not self._fail_open or now - self._fail_open_reported < FAIL_OPEN_REPORT_SECONDS:
                return
            count, reason, self._fail_open = self._fail_open, self._fail_open_reason, 0
            self._fail_open_reported = now
        self._on_health(SensorHealth(self.name, "degraded",
                                     f"{count} opens of protected files allowed without a decision: {reason}"))
        self._sink(AccessFailOpen(count, reason))

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
        held = bool(event.mask & fan.FAN_OPEN_PERM)
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
        verdict: Verdict | None = None
        if held:
            if self._answers is not None and self._answers.overdue(event.fd, now):
                # Queued behind a storm past the deadline: let it through now, undecided, and say so.
                self._undecided(1, "overloaded: opens queued past the decision deadline")
                verdict = None
                self._answer(event.fd, True)
                answered = True
            else:
                # The opener waits for our answer: take its snapshot (the part that cannot wait), decide,
                # answer, and only then do the rest (parent chain, fd sampling) while it runs on.
                snap = self._opener[event.pid] = self.cache.remember(event.pid)
                self._writes_at_open[event.pid] = files_open_for_writing(event.pid)
                execs = self._execs_at_open[event.pid] = self.cache.execs(event.pid)
                io = io_counters(event.pid)  # before it can read: the baseline of what it reads from here on
                self._rchar_at_open[event.pid] = io.get("rchar") if io else None
                if self.gate is not None and self.gate.governs(path, *key):
                    verdict = self.gate.judge(event.pid, event.tid or event.pid, path, key[0], key[1], snap, execs)
                    self.decided += 1
                permit = verdict is None or verdict.decision.permit
                if not self._answer(event.fd, permit):
                    permit = True  # the watchdog let it through at the deadline (and counted it)
                answered = True
                if not permit:
                    self.denied += 1
                    self._refused(event.pid, key, path, st.st_size, now, verdict)
                    return answered
            event = fan.FanotifyEvent(event.mask & ~fan.FAN_OPEN_PERM | fan.FAN_OPEN, event.fd, event.pid)
        if event.mask & fan.FAN_OPEN:
            self.counters.add()
            self._opened(event.pid, key, path, st.st_size, now, verdict)
        if event.mask & fan.FAN_ACCESS:
            session = self._sessions.get((event.pid, key)) or self._inherited(event.pid, key, now)
            if session is not None:
                session.reads += 1
                if session.reads == 1 or now - session.last_sample > 0.02:
                    self._follow_exec(session, final=False)
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

    def _refused(self, pid: int, key: tuple[int, int], path: str, size: int | None, now: float,
                 verdict: Verdict | None) -> None:
        """The policy refused the open (EPERM): no session, one `denied` observation."""
        process = self.cache.process_info(pid, wait=0.05, taken=self._opener.pop(pid, None))
        for taken in (self._execs_at_open, self._rchar_at_open, self._writes_at_open):
            taken.pop(pid, None)
        self.counters.add()
        self._sink(AccessObservation("denied", path, key[0], key[1], size, process, seen_monotonic=now,
                                     verdict=verdict))

    def _opened(self, pid: int, key: tuple[int, int], path: str, size: int | None, now: float,
                verdict: Verdict | None = None) -> None:
        session = self._sessions.get((pid, key))
        if session is not None:
            session.opens += 1
            for taken in (self._opener, self._execs_at_open, self._rchar_at_open, self._writes_at_open):
                taken.pop(pid, None)
            if verdict is not None and verdict.notable:
                # a second open that the policy would refuse (or let in only by break-glass) is news
                self._sink(AccessObservation("decided", path, key[0], key[1], size, session.process,
                                             seen_monotonic=now, verdict=verdict))
            return  # a second descriptor on the same file by the same process: one session
        # The process as it opened: once answered, it may exec another program before we get here.
        process = self.cache.process_info(pid, wait=0.05, taken=self._opener.pop(pid, None))
        if pid in self._rchar_at_open:
            rchar = self._rchar_at_open.pop(pid)
        else:
            io = io_counters(pid)
            rchar = io.get("rchar") if io else None
        execs = self._execs_at_open.pop(pid, None)
        session = _Session(pid, key, path, size, process, now, rchar, process,
                           self.cache.execs(pid) if execs is None else execs)
        self._sessions[(pid, key)] = session
        self._finished.pop((pid, key), None)
        self._sample(session, now, maps=False)
        writes = self._writes_at_open.pop(pid, None)
        self._sink(AccessObservation("opened", path, key[0], key[1], size, process, seen_monotonic=now,
                                     writes_to=files_open_for_writing(pid) if writes is None else writes,
                                     verdict=verdict))

    def _inherited(self, pid: int, key: tuple[int, int], now: float) -> _Session | None:
        """A read by a process with no open of its own: a child reading a descriptor it inherited (`sh` opened
        the model for `( cat ) < model`, or Python handed its open file to a child). The reader gets its own
        session, opened by the opener of its parent's."""
        if (pid, key) in self._finished:
            return None  # a read notification queued before its exit, which was handled already
        sessions = [s for s in self._sessions.values() if s.key == key]
        if not sessions:
            return None  # opened before we marked the file
        ancestors = self._ancestors(pid)
        parent = next((s for s in sessions if s.pid in ancestors), None)
        if parent is None:
            if ancestors or len(sessions) > 1:
                return None  # not a child of an opener: a reader whose own open we did not see
            parent = sessions[0]  # its parents are unknown (gone already): the one opener is the likeliest
        parent.shared = True
        if parent.reads == 0:  # the position it was sampled at moved by the child's reads, not its own
            parent.max_position, parent.positioned = 0, False
        process = self.cache.process_info(pid, wait=0.05)
        # A child's read counter starts at zero at its fork: all of it may be reads of this descriptor. Its
        # exec news count from zero too: any exec heard for it since the fork is news of its program.
        session = _Session(pid, key, parent.path, parent.size, process, now, 0, parent.opener, 0, inherited=True)
        self._sessions[(pid, key)] = session
        self._finished.pop((pid, key), None)
        return session

    def _ancestors(self, pid: int) -> set[int]:
        found: set[int] = set()
        current = self.cache.lookup(pid, wait=0.1)  # a child gone already: the proc connector's fork news may lag
        while current is not None and current.ppid and current.ppid not in found and len(found) < 32:
            found.add(current.ppid)
            current = self.cache.lookup(current.ppid)
        return found

    def _follow_exec(self, session: _Session, *, final: bool) -> bool:
        """Name the program that runs in the session's process now, if it exec'd since the open (or since it
        was last named). False when that cannot be told yet: the process is gone and neither the proc
        connector's news of it (it lags under load) nor its exit record are in. `final`: decide now with what
        there is; a process seen to run another program, but gone before it could be snapshotted, is named by
        its remains (a zombie's comm, or the comm in its exit record), without an executable."""
        pid, known = session.pid, session.process
        live = snapshot(pid)
        execs = self.cache.execs(pid)
        if live is not None and live.exited is False and live.executable is None:
            live = replace(live, exited=True)  # exiting: its memory (exe, command line) is gone already
        if live is not None and not live.exited:
            if (live.executable, live.command_line) != (known.executable, known.command_line):
                self.cache.remember(pid)
                self._rename(session, self.cache.process_info(pid))
            session.execs_at_open = execs
            return True
        if live is not None:
            session.remains = live.name or session.remains
        if execs > session.execs_at_open:
            session.execs_at_open = execs
            if self._rename(session, self.cache.process_info(pid)):
                return True
        elif not self.cache.has_exited(pid) and not final:
            return False  # no news of it yet
        remains = session.remains or self.cache.exit_comm(pid)
        if remains is None and self.cache.exit_accounting and not final:
            return False  # its exit record will say which program ended
        if remains is not None and remains != known.name:
            session.process = _by_remains(known, remains)
        return True

    @staticmethod
    def _rename(session: _Session, current: ProcessInfo) -> bool:
        known = session.process
        if (current.name, current.executable, current.command_line) == (known.name, known.executable,
                                                                        known.command_line):
            return False
        if current.executable is None:  # what remains of a process (exiting, a zombie): its name, no more
            if current.name == known.name or current.name is None:
                return False  # the same program: what we knew is richer
            session.process = _by_remains(known, current.name)
            return True
        session.process = current
        return True

    def _closed(self, pid: int, key: tuple[int, int], path: str, size: int, wrote: bool, now: float) -> None:
        session = self._sessions.get((pid, key))
        if session is not None and session.opens > 1:
            session.opens -= 1
            return  # another descriptor of the same process on the file is still open
        if session is None and self._finished.pop((pid, key), None) is not None:
            return  # ended already, when its process was seen gone
        # The last descriptor of this open is gone. It ends the closer's session, and those of the processes
        # that shared it and no longer hold the file (an inherited reader that exited, an opener that passed
        # its descriptor on and exited).
        ending = [s for s in list(self._sessions.values())
                  if s.key == key and (s.pid == pid or not self._holds(s))]
        if not ending:  # opened before we marked it
            process = self.cache.process_info(pid, wait=0.05)
            self._sink(AccessObservation("written" if wrote else "read", path, key[0], key[1], size, process,
                                         seen_monotonic=now))
            return
        for ended in ending:
            self._finish(ended, "written" if wrote and ended.pid == pid else "read", now)

    def _holds(self, session: _Session) -> bool:
        """Whether the session's process still has the file open or mapped."""
        if not running(session.pid):
            return False
        return bool(fd_positions(session.pid, *session.key)) or maps_file(session.pid, *session.key)

    def _finish(self, session: _Session, kind: str, now: float) -> None:
        """The session ended: report it once what it needs is known (see _settle)."""
        self._sessions.pop((session.pid, session.key), None)
        self._finished[(session.pid, session.key)] = now
        self._ending.append(_Ending(session, kind, now, now + SETTLE_SECONDS))
        self._settle(now)

    def _settle(self, now: float) -> None:
        """Report ended sessions whose reader is known. A process that exec'd and exited within a millisecond
        may be gone before the proc connector's news of it is handled, and the kernel's exit accounting (its
        bytes read) comes on another socket: rather than hold this thread (and every opener waiting on a
        permission answer), an ended session waits here, in order, until both are in or SETTLE_SECONDS passed."""
        while self._ending:
            ending = self._ending[0]
            final = now >= ending.deadline
            if not self._follow_exec(ending.session, final=final) and not final:
                return
            if not final and self._exit_io_due(ending.session):
                return
            self._ending.popleft()
            self._report(ending.session, ending.kind, ending.closed)

    def _exit_io_due(self, session: _Session) -> bool:
        """Its bytes read can only come from its exit accounting, and that has not arrived yet."""
        if session.rchar_at_open is None or session.shared or session.mapped or not self._taskstats_expected():
            return False
        if io_counters(session.pid) is not None:
            return False
        return self.cache.exit_read_chars(session.pid) is None

    def _taskstats_expected(self) -> bool:
        return self.cache.exit_accounting

    def _report(self, session: _Session, kind: str, now: float) -> None:
        bytes_read, source = self._bytes_read(session)
        process, opener = session.process, session.opener
        opened_by = None
        if process.pid != opener.pid or (process.name, process.executable, process.command_line) != (
                opener.name, opener.executable, opener.command_line):
            opened_by = opener
            process = replace(process, opened_by=ProcessRef(pid=opener.pid, name=opener.name,
                                                            executable=opener.executable,
                                                            command_line=opener.command_line, user=opener.user))
        self._sink(AccessObservation(
            kind, session.path, session.key[0], session.key[1], session.size, process,
            bytes_read=bytes_read, bytes_read_source=source, mapped=session.mapped,
            seconds_open=round(now - session.opened, 3), seen_monotonic=now, opened_by=opened_by))

    def _bytes_read(self, session: _Session) -> tuple[int | None, str | None]:
        pid = session.pid
        best: int | None = None
        source: str | None = None
        if session.shared:
            # Children read through its descriptor: the shared position counts their reads, and its read counter
            # counts them too once it has reaped them. Its own: the position before they read.
            return session.max_position, "fd-position"
        if session.positioned:
            best, source = session.max_position, "fd-position"
        if session.mapped and session.resident and (best is None or session.resident > best):
            best, source = min(session.resident, session.size or session.resident), "mapped-resident"
        if session.mapped:
            return best, source  # its read counter says what else it read (its code, its data), not this file
        io = io_counters(pid) if session.rchar_at_open is not None else None
        total, how = (io.get("rchar"), "process-io") if io is not None else (None, None)
        if total is None and session.rchar_at_open is not None:
            # Gone already (a `cat` reaped by its shell): the kernel's exit accounting still says what it read.
            total, how = self.cache.exit_read_chars(pid), "exit-io"
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
            if (session.inherited or age > 5) and not running(session.pid):
                # Gone, and its close went (or will go) to another process that shares the descriptor. Its own
                # close, if one comes, is queued already: give the loop a pass to handle it (it says written).
                if session.gone_since is None:
                    session.gone_since = now
                elif now - session.gone_since >= GONE_SECONDS:
                    self._finish(session, "read", now)
        self._settle(now)
        for ended in [k for k, at in self._finished.items() if now - at > FINISHED_SECONDS]:
            del self._finished[ended]

    def _sample(self, session: _Session, now: float, *, maps: bool) -> None:
        session.last_sample = now
        positions = fd_positions(session.pid, *session.key) if not session.shared else []
        if positions and max(pos for _, pos in positions) > 0:  # at 0 it has not read yet: no measurement
            session.positioned = True
            session.max_position = max(session.max_position, *(pos for _, pos in positions))
        if maps and maps_file(session.pid, *session.key):
            session.mapped = True
        if session.mapped:
            resident = mapped_resident(session.pid, *session.key)
            if resident is not None and resident > session.resident:
                session.resident = resident

    def session_view(self) -> list[dict[str, object]]:
        """Open sessions, for status and tests."""
        return [{"pid": s.pid, "path": s.path, "mapped": s.mapped, "max_position": s.max_position,
                 "positioned": s.positioned, "resident": s.resident, "name": s.process.name,
                 "inherited": s.inherited} for s in list(self._sessions.values())]
