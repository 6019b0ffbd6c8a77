"""Flows: which processes pass data to each other, learnt from /proc when a process becomes interesting.

A flow is a process that read a protected model, its children, and the processes joined to it by pipes or
local sockets (a shell pipeline `dd | gzip | curl` is one flow). Membership is learnt only for processes
that matter, never for every process on the machine:
- when a process opens or reads a protected model (or a tainted output of another flow), its open
  descriptors are read (/proc/<pid>/fd: `pipe:[INODE]`, `socket:[INODE]`), then its children and its
  parent's other children (/proc/<pid>/task/*/children): a child joins; a sibling joins when it holds one of
  the flow's pipe or socket inodes (the shell made the pipe and handed each end to one of them); whoever
  joins is looked at the same way, within SCAN_BUDGET processes per look;
- when a process nobody has placed writes a file or sends while some flow is tainted, its parent chain (the
  process cache's, it outlives the processes) and its descriptors are checked against the flows.
Processes are keyed by (pid, start time): a pid reused during a flow is a different process. A process
that read the model and exited before any write is still a member, so its children and pipe peers carry it.

Runs on the dispatcher's thread and feeds the pure ledger (agent/detect/lineage.py). Two things are read
from other threads, each a frozenset replaced whole: `tainted_pids` (the fs-writes sensor hands over every
close of a tainted flow's process, whatever its size: a 1 KB base64 part counts, and its deletions) and
`tainted_paths` (the access sensor marks tainted outputs, so a flow reading one later inherits the taint).

Bad input: a file a member deletes while a member still writes it is held open through /proc/<pid>/fd and
measured at its close; one gone before that counts its writer's write() bytes since it joined (an upper
bound, named so). A connection seen only at its socket's destruction names no process: it goes to the one
flow whose opener of a model or tainted file has just exited (SENDER_SECONDS), marked as inferred.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

from weightwarden.agent.detect.lineage import COPY, MODEL, OTHER, PENDING, LineageLedger
from weightwarden.agent.detect.places import destination_kind
from weightwarden.agent.events import Alert, ModelFile, ProcessInfo, Record, display_path
from weightwarden.agent.sensors.access import AccessObservation
from weightwarden.agent.sensors.files import FileObservation
from weightwarden.agent.sensors.network import ConnectionObservation

SCAN_BUDGET = 256  # processes looked at (fd links, children) per look
FDS_READ = 4096  # descriptors read per process
MEMBERS_KEPT = 65536  # (pid, start) -> flow over every flow; the oldest are forgotten first
PIPES_KEPT = 65536
LIVE_CHECK_SECONDS = 1.0
# A child joins its tainted parent's flow by descent alone when it was forked after the parent's read,
# within this long of the flow's latest read, and did not exec (a forked worker holds the parent's memory:
# multiprocessing, a DataLoader); a child that exec'd another program carries nothing of its parent's but
# what its descriptors give it, so it joins through a pipe or socket it shares with the flow. A long-lived
# process that once loaded a model (an IDE, a notebook kernel, a test runner) does not make every program it
# starts afterwards part of that flow.
CHILD_SECONDS = 30.0
HELD_KEPT = 64  # descriptors held on deleted outputs still being written (measured at their close)
# A socket seen only at its destruction names no process (agent/sensors/network.py). It is given to a
# tainted flow when exactly one flow has a process that opened a protected model or a tainted output within
# this long and has exited since (curl -T FILE: opens, connects, sends, closes, exits within milliseconds,
# before the network sensor could name it); the output says its process was inferred.
SENDER_SECONDS = 2.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def boot_ticks() -> int:
    """Now, in /proc/<pid>/stat starttime's unit (clock ticks since boot)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * _TICKS)

Key = tuple[int, int | None]  # (pid, start time in clock ticks since boot; None: unknown, it had exited)


def _stat_fields(pid: int) -> list[bytes]:
    """/proc/<pid>/stat's fields after the command name (state first); [] when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read(4096)
    except OSError:
        return []
    return raw.rpartition(b") ")[2].split()


def start_ticks(pid: int) -> int | None:
    """/proc/<pid>/stat starttime, or None when there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if len(fields) > 19 else None


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if len(fields) > 1 else None


def fd_links(pid: int) -> set[str]:
    """The pipe and socket links (`pipe:[123]`, `socket:[456]`) among a process's open descriptors, standard
    error left out: processes that share only where their messages go (a CI runner's captured stderr, a
    `make -j`'s jobs) pass no data to each other."""
    found: set[str] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names[:FDS_READ]:
        if name == "2":
            continue
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if link.startswith(("pipe:[", "socket:[")):
            found.add(link)
    return found


def program_of(pid: int) -> tuple[str | None, bytes | None]:
    """(executable, raw command line) of a live process: equal to its parent's until it execs."""
    try:
        exe: str | None = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline: bytes | None = handle.read(1 << 16)
    except OSError:
        cmdline = None
    return exe, cmdline


def files_written(pid: int) -> set[str]:
    """Regular files a process holds open for writing (a shell's redirection `> out` handed to its child:
    the close may be reported for the shell, which holds the last reference)."""
    found: set[str] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names[:FDS_READ]:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if not link.startswith("/") or link.startswith(("/dev/", "/proc/", "/sys/")):
            continue
        try:
            with open(f"/proc/{pid}/fdinfo/{name}", "rb") as handle:
                info = handle.read(4096)
        except OSError:
            continue
        for line in info.splitlines():
            if line.startswith(b"flags:"):
                if int(line.split()[1], 8) & 3:  # O_WRONLY or O_RDWR
                    found.add(link)
                break
    return found


def children_of(pid: int) -> list[int]:
    """Children of every thread of `pid` (/proc/<pid>/task/<tid>/children)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks[:64]:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                found.extend(int(c) for c in handle.read(1 << 16).split())
        except (OSError, ValueError):
            continue
    return found


class FlowTracker:
    """Which flow each interesting process belongs to; feeds the ledger what flows read, wrote and sent."""

    def __init__(self, ledger: LineageLedger, *, model_of: Callable[[str, int, int], ModelFile | None],
                 file_state: Callable[[str], str], ignored: Callable[[str], bool] = lambda path: False,
                 own_pid: int | None = None) -> None:
        """`model_of(path, device, inode)`: the protected model file there (the inventory); `file_state(path)`:
        what the file pipeline makes of an output (lineage.PENDING/COPY/MODEL/OTHER); `ignored`: the agent's
        own data dir."""
        self.ledger = ledger
        self._model_of = model_of
        self._file_state = file_state
        self._ignored = ignored
        self._own = own_pid if own_pid is not None else os.getpid()
        # pid -> (start, flow, parent pid): every process placed in a flow, bounded
        self._members: OrderedDict[int, tuple[int | None, int, int | None]] = OrderedDict()
        self._pipes: OrderedDict[str, int] = OrderedDict()  # pipe/socket link -> flow
        self._read_at: OrderedDict[int, tuple[float, int]] = OrderedDict()  # flow -> its first read (monotonic,
        # boot ticks: children forked before it do not inherit) and latest read (monotonic) below
        self._last_read: dict[int, float] = {}
        self._programs: OrderedDict[int, tuple[str | None, bytes | None]] = OrderedDict()  # member -> program
        self._next_flow = 1
        self._written: OrderedDict[str, int] = OrderedDict()  # files members hold open for writing -> flow
        self._copies: set[str] = set()  # outputs model-copy raised an alert for (display paths)
        self._held: OrderedDict[str, int] = OrderedDict()  # deleted output still written -> our descriptor on it
        self._wchar: OrderedDict[int, int] = OrderedDict()  # member -> its write() bytes when it joined
        self._openers: OrderedDict[int, tuple[float, int | None, int]] = OrderedDict()  # pid that opened a
        # model or tainted output -> (monotonic time, start ticks, flow): candidates for a nameless socket
        self._last_live_check = 0.0
        # read from other threads: replaced whole, never changed in place
        self.tainted_pids: frozenset[int] = frozenset()
        self.tainted_paths: frozenset[str] = frozenset()
        # called when processes join a tainted flow (the agent wakes the network sensor: an upload of a
        # tainted file can start and end between two ordinary polls, and a socket seen only at its
        # destruction names no process)
        self.on_joined: Callable[[frozenset[int]], None] = lambda pids: None
        # called when tainted_paths changed outside tick() (an output tainted as it is written: the agent has
        # the access sensor mark it at once)
        self.on_tainted: Callable[[], None] = lambda: None
        self._taints_seen = 0
        self.joined = 0
        self.scanned = 0

    # ------------------------------------------------------------------ observations (dispatcher thread)

    def access(self, obs: AccessObservation, model: ModelFile | None) -> None:
        """A protected file (or a tainted output) was opened or read."""
        if obs.kind not in ("opened", "read", "held") or obs.process.pid == self._own:
            return
        now = time.monotonic()
        taint = self.ledger.taint(obs.device, obs.inode, obs.path) if model is None else None
        if model is None and taint is None:
            return
        flow = self._flow_of(obs.process.pid, create=True)
        assert flow is not None
        self._publish()  # before the slower look at its pipes and children: it may be uploading already
        if flow not in self._read_at:
            self._read_at[flow] = (now, boot_ticks())
            while len(self._read_at) > MEMBERS_KEPT:
                self._last_read.pop(self._read_at.popitem(last=False)[0], None)
        self._last_read[flow] = now
        self._openers[obs.process.pid] = (now, self._members.get(obs.process.pid, (None,))[0], flow)
        self._openers.move_to_end(obs.process.pid)
        while len(self._openers) > HELD_KEPT * 16:
            self._openers.popitem(last=False)
        if taint is not None:
            self.ledger.inherit(flow, obs.process, taint, obs.path, obs.size or 0, now)
        elif model is not None:
            # an open (or a file still held) may read the whole file; a read's count comes at its close
            self.ledger.read(flow, obs.process, model.model, model.path, obs.size or model.size,
                             None if obs.kind in ("opened", "held") else (obs.bytes_read or 0), now)
            if obs.kind != "opened" and (obs.bytes_read is None or (obs.mapped and not obs.bytes_read)):
                self.ledger.read_whole(flow, model.path)
        self._expand(obs.process.pid, flow)
        self._publish()

    def file(self, obs: FileObservation) -> None:
        """A file closed after writing, moved or deleted: an output of a tainted flow, or a tainted file moved."""
        if obs.kind == "moved" and obs.dest_path is not None and not obs.is_directory:
            try:  # zip and others write a temporary name and rename it: gone before its close was looked at
                st: os.stat_result | None = os.stat(obs.dest_path, follow_symlinks=False)
            except OSError:
                st = None
            self.ledger.moved(obs.path, obs.dest_path, destination_kind(obs.dest_path), time.monotonic(),
                              size=_written_bytes(st) if st is not None else None,
                              device=st.st_dev if st is not None else None, inode=st.st_ino if st is not None else None)
            self._publish_taints()
            return
        if obs.kind == "deleted":
            self.ledger.deleted(obs.path)
            if obs.pid is not None and not obs.is_directory and obs.pid in self._members:
                self._hold(obs.pid, obs.path)
            return
        if obs.kind != "closed" or obs.pid is None or self._ignored(obs.path) or not self._members:
            return
        flow = self._flow_of(obs.pid, process=obs.process)
        if flow is None:  # a file a member wrote through a descriptor someone else closed last
            flow = self._written.get(obs.path)
        if flow is None or not self.ledger.has_read(flow):
            return
        measure, gone = "size", False
        held = self._held.pop(obs.path, None)
        try:
            st = os.stat(obs.path, follow_symlinks=False)
        except OSError:  # deleted: measured through the descriptor held on it, else bounded by its writes
            size, device, inode, gone = obs.size or 0, None, None, True
            if held is not None:
                with _closing(held):
                    size, measure = max(size, _written_bytes(os.fstat(held))), "held-open"
            elif (bound := self._writes_since_join(obs.pid)) is not None and bound > size:
                size, measure = bound, "writes-upper-bound"
        else:
            if held is not None:
                os.close(held)
            if self._model_of(obs.path, st.st_dev, st.st_ino) is not None:
                return  # a protected model rewritten in place: not an output
            size, device, inode = _written_bytes(st), st.st_dev, st.st_ino
        process = obs.process or ProcessInfo(pid=obs.pid)
        self.ledger.wrote(flow, process, obs.path, destination_kind(obs.path), size, device, inode,
                          time.monotonic(), measure=measure, gone=gone)
        self._publish_taints()

    def connection(self, obs: ConnectionObservation) -> None:
        if obs.process is None:
            if self._members and obs.phase == "closed" and obs.final and obs.bytes_sent:
                self._nameless(obs)
            return
        if not self._members:
            return
        if obs.phase == "opened" or not obs.bytes_sent:
            self._flow_of(obs.process.pid, process=obs.process)  # placed while it runs (its start time known)
            return
        flow = self._flow_of(obs.process.pid, process=obs.process)
        if flow is None or not self.ledger.has_read(flow):
            return
        key = f"{obs.netns}:{obs.local}:{obs.local_port}->{obs.remote}:{obs.remote_port}/{obs.protocol}"
        self.ledger.sent(flow, obs.process, key, obs.remote, obs.remote_port, obs.bytes_sent, time.monotonic())

    def _nameless(self, obs: ConnectionObservation) -> None:
        """A socket seen only at its destruction: the one flow (or the latest of one incident's flows) whose
        opener has just exited sent it."""
        now = time.monotonic()
        latest: dict[int, float] = {}  # candidate flow -> its latest opener's open
        for pid, (at, start, flow) in self._openers.items():
            if now - at <= SENDER_SECONDS and self.ledger.has_read(flow) and _exited(pid, start):
                latest[flow] = max(at, latest.get(flow, at))
        incidents = {self.ledger.incident_of(flow) for flow in latest}
        if len(latest) != 1 and (len(incidents) != 1 or None in incidents):
            return  # flows of different incidents (or not yet alerted) could have sent it: nobody's
        key = f"{obs.netns}:{obs.local}:{obs.local_port}->{obs.remote}:{obs.remote_port}/{obs.protocol}"
        # of one incident's flows (mv of a tainted file, then curl -T of the copy), the latest opener's
        self.ledger.sent(max(latest, key=latest.__getitem__), None, key, obs.remote, obs.remote_port,
                         obs.bytes_sent or 0, now, owner="inferred")

    def _hold(self, pid: int, path: str) -> None:
        """A member deleted a file: if one of the flow's live processes still writes it, hold a descriptor on
        it (through /proc/<pid>/fd) so its size can be read when it is closed."""
        if path in self._held:
            return
        flow = self._members[pid][1]
        writers = [pid, *(p for p, m in reversed(self._members.items()) if m[1] == flow and p != pid)]
        gone = f"{path} (deleted)"
        for writer in writers[:SCAN_BUDGET]:
            try:
                names = os.listdir(f"/proc/{writer}/fd")
            except OSError:
                continue
            for name in names[:FDS_READ]:
                try:
                    if os.readlink(f"/proc/{writer}/fd/{name}") != gone:
                        continue
                    held = os.open(f"/proc/{writer}/fd/{name}", os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue
                self._held[path] = held
                while len(self._held) > HELD_KEPT:
                    os.close(self._held.popitem(last=False)[1])
                return

    def _writes_since_join(self, pid: int | None) -> int | None:
        """The member's write() bytes since it joined (/proc/<pid>/io wchar; files, pipes and sockets alike),
        or None when it is gone or unknown."""
        if pid is None or pid not in self._wchar:
            return None
        now = _wchar_of(pid)
        return None if now is None else max(0, now - self._wchar[pid])

    def close(self) -> None:
        """Let go of the descriptors held on deleted outputs."""
        while self._held:
            os.close(self._held.popitem()[1])

    def copy_alerts(self, records: list[Record]) -> list[Record]:
        """The file pipeline's records, passed through: its model-copy alerts name outputs lineage folds."""
        for record in records:
            if isinstance(record, Alert) and record.rule_id == "model-copy" and record.destination is not None \
                    and record.destination.path:
                self._copies.add(record.destination.path)
                if len(self._copies) > 4096:
                    self._copies.pop()
        return records

    def state_of(self, path: str) -> str:
        if display_path(path) in self._copies:
            return COPY
        return self._file_state(path)

    def tick(self, now: float) -> list[Alert]:
        """Due decisions; dead members leave the tainted pid set (their flows stay)."""
        alerts = self.ledger.decide(now, self.state_of)
        if alerts:
            self.tainted_paths = self.ledger.tainted_paths()
        if self.tainted_pids and now - self._last_live_check >= LIVE_CHECK_SECONDS:
            self._last_live_check = now
            live = frozenset(p for p in self.tainted_pids
                             if p in self._members and start_ticks(p) == self._members[p][0])
            if live != self.tainted_pids:
                self.tainted_pids = live
        return alerts

    def due_in(self, now: float) -> float | None:
        due = self.ledger.next_due()
        return None if due is None else max(0.0, due - now)

    def urgent(self) -> bool:
        """Whether a tainted flow has live processes (the network sensor then polls quickly)."""
        return bool(self.tainted_pids)

    # ------------------------------------------------------------------ membership

    def _flow_of(self, pid: int, *, create: bool = False, process: ProcessInfo | None = None) -> int | None:
        start = start_ticks(pid)
        known = self._members.get(pid)
        if known is not None:
            if known[0] is None or start is None or known[0] == start:
                return known[1]
            del self._members[pid]  # the pid was reused: another process
        if not create:
            return self._place(pid, start, process)
        flow = self._next_flow
        self._next_flow += 1
        self._join(pid, start, flow, parent_of(pid))
        return flow

    def _place(self, pid: int, start: int | None, process: ProcessInfo | None) -> int | None:
        """A process nobody placed that writes or sends: a descendant of a member (its parent chain, as the
        process cache remembers it), or a peer holding one of a flow's pipes. Never a member's parent: a
        shell, an IDE or a CI runner holding its child's output pipe would join every flow it starts."""
        chain: list[int | None] = [process.ppid] if process is not None and process.ppid else [parent_of(pid)]
        for parent in chain[:1]:  # the direct parent: a forked worker of a member
            if parent is not None and parent in self._members:
                flow = self._members[parent][1]
                if self._inherits(flow, start) and start is not None and \
                        program_of(pid) == self._programs.get(parent, (None, None)):
                    self._join(pid, start, flow, parent)
                    return flow
        if start is None:
            return None
        parent = parent_of(pid)
        for link in fd_links(pid):
            peer = self._pipes.get(link)
            if peer is None:
                continue
            # a pipeline peer (its parent is a member's parent: the shell that made the pipe) or a member's
            # child; a grandchild holding its ancestor's pipe (a test runner's or IDE's captured output) is not
            if any(m[1] == peer and (m[2] == parent or member == parent) for member, m in self._members.items()):
                self._join(pid, start, peer, parent)
                return peer
        return None

    def _join(self, pid: int, start: int | None, flow: int, parent: int | None,
              links: set[str] | None = None) -> None:
        self._members[pid] = (start, flow, parent)
        self._members.move_to_end(pid)
        self.ledger.member(flow, ProcessInfo(pid=pid, name=_comm(pid), ppid=parent), time.monotonic())
        self._programs[pid] = program_of(pid)
        self._programs.move_to_end(pid)
        wchar = _wchar_of(pid)
        if wchar is not None:
            self._wchar[pid] = wchar
            self._wchar.move_to_end(pid)
            while len(self._wchar) > MEMBERS_KEPT:
                self._wchar.popitem(last=False)
        while len(self._programs) > MEMBERS_KEPT:
            self._programs.popitem(last=False)
        self.joined += 1
        while len(self._members) > MEMBERS_KEPT:
            self._members.popitem(last=False)
        for link in fd_links(pid) if links is None else links:
            self._pipes[link] = flow
            self._pipes.move_to_end(link)
        while len(self._pipes) > PIPES_KEPT:
            self._pipes.popitem(last=False)
        for path in files_written(pid):
            self._written[path] = flow
            self._written.move_to_end(path)
        while len(self._written) > PIPES_KEPT:
            self._written.popitem(last=False)

    def _expand(self, pid: int, flow: int) -> None:
        """Forked workers join; children and the parent's other children join when they share a pipe or socket
        with the flow
        (repeated until none joins: in `a | b | c`, c shares a pipe with b only). At most SCAN_BUDGET
        processes are looked at."""
        todo, seen, budget = [pid], {pid}, SCAN_BUDGET
        waiting: dict[int, tuple[int | None, int | None, set[str]]] = {}  # siblings not joined (yet)
        while todo and budget > 0:
            current = todo.pop()
            parent = parent_of(current)
            candidates = [(c, current, True) for c in children_of(current)]
            if parent is not None and parent > 1:
                candidates += [(c, parent, False) for c in children_of(parent)]
            for candidate, its_parent, is_child in candidates:
                if candidate in seen or candidate == self._own or budget <= 0:
                    continue
                seen.add(candidate)
                budget -= 1
                self.scanned += 1
                started = start_ticks(candidate)
                known = self._members.get(candidate)
                if started is None or (known is not None and known[0] == started):
                    continue
                links = fd_links(candidate)
                if is_child and self._inherits(flow, started) and \
                        program_of(candidate) == self._programs.get(current, (None, None)):
                    self._join(candidate, started, flow, its_parent, links)
                    todo.append(candidate)
                else:  # a sibling, or a child that exec'd: through a shared pipe or socket
                    waiting[candidate] = (started, its_parent, links)
            joined = True
            while joined:
                joined = False
                mine = {link for link, f in self._pipes.items() if f == flow}
                for candidate, (born, their_parent, their_links) in list(waiting.items()):
                    if their_links & mine:
                        del waiting[candidate]
                        self._join(candidate, born, flow, their_parent, their_links)
                        todo.append(candidate)
                        joined = True

    def _inherits(self, flow: int, start: int | None) -> bool:
        """Whether a descendant started at `start` (None: unknown, it exited) carries the flow's data: forked
        after the flow's first read, within CHILD_SECONDS of its latest."""
        first = self._read_at.get(flow)
        if first is None or time.monotonic() - self._last_read.get(flow, first[0]) > CHILD_SECONDS:
            return False
        return start is None or start >= first[1] - 1  # a tick of slack: starttime is rounded down

    def _publish_taints(self) -> None:
        if self.ledger.taints_changed != self._taints_seen:
            self._taints_seen = self.ledger.taints_changed
            tainted = self.ledger.tainted_paths()
            if tainted != self.tainted_paths:
                self.tainted_paths = tainted
                self.on_tainted()

    def _publish(self) -> None:
        pids = frozenset(self._members)
        if pids != self.tainted_pids:
            grew = not pids <= self.tainted_pids
            self.tainted_pids = pids
            if grew:
                self.on_joined(pids)


def _comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm", "rb") as handle:
            return handle.read(64).strip().decode("utf-8", "backslashreplace") or None
    except OSError:
        return None


def _wchar_of(pid: int) -> int | None:
    """/proc/<pid>/io wchar: bytes the process passed to write() and its kin, whatever they went to."""
    try:
        with open(f"/proc/{pid}/io", "rb") as handle:
            for line in handle.read(4096).splitlines():
                if line.startswith(b"wchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _exited(pid: int, start: int | None) -> bool:
    """Whether the process that had this pid (started at `start`) has exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read(4096).rpartition(b") ")[2].split()
    except OSError:
        return True
    if len(fields) < 20:
        return True
    return fields[0] == b"Z" or (start is not None and int(fields[19]) != start)


@contextlib.contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _written_bytes(st: os.stat_result) -> int:
    """What a closed file holds: its size, at most its allocated blocks (a sparse file claims bytes it never
    wrote); a file with no blocks reported (inline data, some network filesystems) counts its size."""
    allocated = st.st_blocks * 512
    return min(st.st_size, allocated) if allocated else st.st_size


def file_state(pending: Callable[[str], bool], inventoried: Callable[[str], bool]) -> Callable[[str], str]:
    """What the file pipeline makes of an output file: still being looked at, a model file, anything else."""
    def state(path: str) -> str:
        if inventoried(path):
            return MODEL
        return PENDING if pending(path) else OTHER
    return state
