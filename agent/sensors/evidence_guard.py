"""Evidence guard: who opens the agent's own evidence for writing (system mode, fanotify).

The agent's record is only worth something if the person it watches cannot quietly change it. Its
database, the database's WAL, its signing key, its managed destinations and its configuration are written
by the agent alone; any other process that opens one of them for writing is reported (the service makes it
an `evidence-written` event, which rule `evidence-tampered` raises at severity 9, forwarded as soon as it is
stored).

How: one fanotify notification group with marks on the guarded directories (the data directory, the
configuration file's directory) and FAN_EVENT_ON_CHILD, so every file in them is covered whatever its
inode (SQLite makes a new WAL at each clean reopen; an editor replaces a config file by renaming a new one
over it). The group reports file ids (the directory's handle and the entry's name), never a descriptor:
a descriptor on the agent's own database, closed again, would drop every POSIX lock the agent's SQLite
holds on that file (fcntl locks belong to the process and go with any close), and the next SQLite client
would take itself for the only one, rebuild the shared-memory index under the agent's map and kill it
with SIGBUS. Events name the process:
- FAN_OPEN: the opener's descriptors on that file are read at once (/proc/<pid>/fdinfo flags); one opened
  for writing is reported before anything is written. The descriptor may not be in the table yet when the
  event is read (the kernel reports the open before it returns it): then the next two catch it;
- FAN_MODIFY (a write) and FAN_CLOSE_WRITE (a close of a file that was open for writing, written or not).
The agent's own pid is never reported (its threads share it). One report per (process, file) per
REPEAT_SECONDS: a tamperer's every write is one alert, not thousands.

Not seen here: a guarded file deleted, or replaced by a rename, without being opened for writing (no event
on its content): `weightwarden verify` and `verify --against` the SIEM's copy find what was lost.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors import fanotify
from weightwarden.agent.sensors.base import Counters, SensorStatus, SensorThread, privilege
from weightwarden.agent.sensors.files import SensorHealth

log = logging.getLogger(__name__)

FAN_EVENT_ON_CHILD = 0x08000000
MASK = fanotify.FAN_OPEN | fanotify.FAN_MODIFY | fanotify.FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD
REPEAT_SECONDS = 60.0
REPORTS_KEPT = 4096
READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class EvidenceTouch:
    """A process other than the agent opened one of its evidence files for writing."""

    path: str
    what: str  # database | write-ahead log | signing key | configuration | data file
    how: str  # opened for writing | wrote | closed after writing
    process: ProcessInfo


class EvidenceGuard:
    """fanotify marks on the agent's evidence directories; reports foreign writers to `sink`."""

    name = "evidence-guard"

    def __init__(self, cache: ProcessCache, sink: Callable[[EvidenceTouch], None],
                 on_health: Callable[[SensorHealth], None], *, directories: Collection[str],
                 names: Callable[[str], str | None], writes_only: Collection[str] = ()) -> None:
        """`directories`: where the evidence lives; `names(path)`: what a file there is (None: not guarded,
        e.g. SQLite's shared-memory index, which every reader maps for writing); `writes_only`: kinds whose
        every reader opens them read-write (SQLite's WAL, even for a read-only connection): only a write
        (FAN_MODIFY) of one is reported."""
        self._writes_only = frozenset(writes_only)
        self.cache = cache
        self._sink = sink
        self._on_health = on_health
        self._directories = sorted({os.path.abspath(d) for d in directories})
        self._names = names
        self._own = os.getpid()
        self._fd: int | None = None
        self._by_handle: dict[tuple[int, bytes], str] = {}  # (fsid, directory handle) -> guarded directory
        self._thread = SensorThread("ww-evidence-guard", self._run)
        self._reported: OrderedDict[tuple[int, str], float] = OrderedDict()
        self.counters = Counters()
        self._state = "stopped"
        self._message = ""

    def start(self) -> None:
        why = fanotify.unavailable()
        if why is not None:
            self._degraded(why)
            return
        try:
            self._fd = fanotify.init(fanotify.FAN_CLASS_NOTIF | fanotify.FAN_CLOEXEC | fanotify.FAN_NONBLOCK
                                     | fanotify.FAN_REPORT_DFID_NAME)
        except OSError as error:
            self._degraded(f"fanotify_init (file ids): {error.strerror or error}")
            return
        marked, failed = [], []
        for directory in self._directories:
            try:
                handle = fanotify.name_to_handle(directory)
                fanotify.mark(self._fd, fanotify.FAN_MARK_ADD | fanotify.FAN_MARK_DONT_FOLLOW, MASK, directory)
                self._by_handle[(os.statvfs(directory).f_fsid, handle)] = directory
                marked.append(directory)
            except OSError as error:
                failed.append(f"{directory}: {error.strerror or error}")
        if not marked:
            os.close(self._fd)
            self._fd = None
            self._degraded("; ".join(failed) or "nothing to guard")
            return
        self._thread.start()
        self._state = "running" if not failed else "degraded"
        self._message = f"writes by other processes to the files in {', '.join(marked)}" + (
            f"; not guarded: {'; '.join(failed)}" if failed else "")
        self._on_health(SensorHealth(self.name, self._state, self._message))

    def stop(self) -> None:
        self._thread.stop()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._state = "stopped"

    def status(self) -> SensorStatus:
        return SensorStatus(self.name, self._state, "fanotify", privilege(), self._message, self.counters.events,
                            self.counters.rate(), self.counters.drops, 0)

    def _degraded(self, why: str) -> None:
        self._state, self._message = "degraded", f"the agent's evidence is not guarded: {why}"
        log.warning("%s", self._message)
        self._on_health(SensorHealth(self.name, "degraded", self._message))

    def _run(self) -> None:
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._thread.waker.fileno(), select.POLLIN)
        while not self._thread.stopping.is_set():
            for fd, _ in poller.poll():
                if fd == self._thread.waker.fileno():
                    self._thread.waker.drain()
                    continue
                try:
                    buffer = os.read(self._fd, READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError as error:
                    log.warning("evidence guard: reading events failed: %s", error)
                    return
                for event in fanotify.parse_fid(buffer):
                    self._handle(event)

    def _handle(self, event: fanotify.FidEvent) -> None:
        if event.mask & fanotify.FAN_Q_OVERFLOW:
            self.counters.drop()
            return
        if event.pid == self._own:
            return
        record = next((r for r in event.records if r.info_type == fanotify.FAN_EVENT_INFO_TYPE_DFID_NAME), None)
        directory = self._by_handle.get((record.fsid, record.handle)) if record is not None else None
        if record is None or directory is None or not record.name:
            return
        path = os.path.join(directory, os.fsdecode(record.name))
        what = self._names(path)
        if what is None:
            return
        if event.mask & fanotify.FAN_MODIFY:
            how = "wrote"
        elif what in self._writes_only:
            return
        elif event.mask & fanotify.FAN_CLOSE_WRITE:
            how = "closed after writing"
        elif _holds_for_writing(event.pid, path):
            how = "opened for writing"
        else:
            return
        now = time.monotonic()
        key = (event.pid, path)
        if now - self._reported.get(key, -REPEAT_SECONDS) < REPEAT_SECONDS:
            return
        self._reported[key] = now
        self._reported.move_to_end(key)
        while len(self._reported) > REPORTS_KEPT:
            self._reported.popitem(last=False)
        self.counters.add()
        self._sink(EvidenceTouch(path, what, how, self.cache.process_info(event.pid)))


def _holds_for_writing(pid: int, path: str) -> bool:
    """Whether the process has `path` open for writing now (its descriptors' fdinfo flags)."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for name in names[:4096]:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") != path:
                continue
            with open(f"/proc/{pid}/fdinfo/{name}", "rb") as handle:
                for line in handle.read(4096).splitlines():
                    if line.startswith(b"flags:") and int(line.split()[1], 8) & os.O_ACCMODE:
                        return True
        except (OSError, ValueError):
            continue
    return False
