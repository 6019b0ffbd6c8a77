"""Flows: which processes pass data to each other, learnt from /proc when a process becomes interesting.

A flow is a process that read a protected model, its children, and the processes joined to it by pipes or
local sockets (a shell pipeline `dd | gzip | curl` is one flow). Membership is learnt only for processes
that matter, never for every process on the machine:
- when a process opens or reads a protected model (or a tainted output of another flow), its open
  descriptors are read (/proc/<pid>/fd: `pipe:[INODE]` with the end it holds, from fdinfo; `socket:[INODE]`),
  then its children and its parent's other children (/proc/<pid>/task/*/children): a forked child joins; a
  sibling or a child that exec'd joins when data passes to it: it reads a pipe a member writes into (the
  shell made the pipe and handed each end to one of them), or holds the peer of a member's connected Unix
  socket (sock_diag UNIX_DIAG_PEER). Holding the same end as a member is not enough: every job of a CI
  runner inherits its stdin. Whoever joins is looked at the same way, within SCAN_BUDGET processes per look;
- when a process nobody has placed writes a file or sends while some flow is tainted, its parent (a forked
  worker of a member) and its descriptors are checked against the flows the same way, whoever started it:
  a pipe's read end passed over a Unix socket (SCM_RIGHTS) carries the data to an unrelated process. Never
  a member's ancestor: a shell, an IDE or a test runner reading its child's output would join every flow.
- a member's TCP connection to a local listener (the network sensor names the listener's process: its
  `peer`) makes that process a relay of the flow, unless it is the member's ancestor: a SOCKS or HTTP proxy,
  ssh -D, a port forwarder. Its sends count for the flow from then on (a connection it already had counts
  from the first look after, one it opened since counts whole), never more than the flow fed it: an old
  tunnel's other traffic is not the model. A relay's files are its own.
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
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from weightwarden.agent.detect.lineage import COPY, MODEL, OTHER, PENDING, LineageLedger
from weightwarden.agent.detect.places import destination_kind
from weightwarden.agent.events import Alert, ModelFile, ProcessInfo, Record, display_path
from weightwarden.agent.processes import access_mode, descriptors, files_open_for_writing
from weightwarden.agent.sensors import sockdiag
from weightwarden.agent.sensors.access import AccessObservation
from weightwarden.agent.sensors.files import FileObservation
from weightwarden.agent.sensors.network import ConnectionObservation

SCAN_BUDGET = 256  # processes looked at (fd links, children) per look
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
# A relay's connection first seen this long before the flow's connection to it counts whole: a proxy opens
# its way out as soon as it is asked, and a poll may see that before the flow's own connection (the feeder
# was not yet known to have read the model). What it counts is capped by what the flow fed it anyway.
RELAY_SLACK_SECONDS = 2.0
NAMELESS_WAIT_SECONDS = 0.3
WRITES, READS = ">", "<"  # the end of a pipe a descriptor holds (fd_links)
PEERS_SECONDS = 0.05  # one dump of the Unix sockets' peers serves the looks within this long
ANCESTORS_WALKED = 32
PASSED_SCAN = 4096  # processes looked at for the reader of a pipe nobody near the flow reads
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
    """The pipe ends and sockets among a process's open descriptors: `pipe:[123]>` (it writes into the pipe),
    `pipe:[123]<` (it reads from it), `socket:[456]`. Standard error is left out: processes that share only
    where their messages go (a CI runner's captured stderr, a `make -j`'s jobs) pass no data to each other."""
    found: set[str] = set()
    for name, link in descriptors(pid):
        if name == "2":
            continue
        if link.startswith("socket:["):
            found.add(link)
        elif link.startswith("pipe:["):
            mode = access_mode(pid, name)
            if mode in (None, os.O_WRONLY, os.O_RDWR):
                found.add(link + WRITES)
            if mode in (None, os.O_RDONLY, os.O_RDWR):
                found.add(link + READS)
    return found


def _pipe_links(pid: int) -> set[str]:
    """The pipes (`pipe:[123]`) among a process's descriptors, whichever end: the cheap first look."""
    return {link for _, link in descriptors(pid) if link.startswith("pipe:[")}


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


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
        self._pipes: OrderedDict[str, tuple[int, int]] = OrderedDict()  # pipe end or socket -> (flow, holder)
        self._peers: tuple[float, dict[int, int]] = (-1.0, {})  # (when, Unix socket inode -> peer inode)
        self._diag: socket.socket | None = None
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
        self._relays: OrderedDict[int, _Relay] = OrderedDict()  # local proxies the flows feed, by pid
        # nameless sockets whose sender may be about to exit: (decide at, seen at, observation), in order
        self._unplaced: list[tuple[float, float, ConnectionObservation]] = []
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
        for path in obs.writes_to:  # its redirections, seen while it waited on its open: it may be gone now
            self._written[path] = flow
            self._written.move_to_end(path)
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
        key = _connection_key(obs)
        if obs.peer is not None:
            self._feeds(obs, key)
            return
        relay = self._relays.get(obs.process.pid)
        if relay is not None and start_ticks(obs.process.pid) in (relay.start, None):  # None: it has exited
            self._relayed(relay, obs, key)
            return
        if obs.phase == "opened" or not obs.bytes_sent:
            self._flow_of(obs.process.pid, process=obs.process)  # placed while it runs (its start time known)
            return
        flow = self._flow_of(obs.process.pid, process=obs.process)
        if flow is None or not self.ledger.has_read(flow):
            return
        self.ledger.sent(flow, obs.process, key, obs.remote, obs.remote_port, obs.bytes_sent, time.monotonic())

    def _feeds(self, obs: ConnectionObservation, key: str) -> None:
        """A member's connection to a local listener (its `peer`): the listener is a relay of the flow (a local
        proxy, a port forwarder) whose sends count, up to what the flow fed it."""
        assert obs.process is not None and obs.peer is not None
        flow = self._flow_of(obs.process.pid, process=obs.process)
        peer = obs.peer.pid
        if flow is None or not self.ledger.has_read(flow) or peer == self._own:
            return
        if peer not in self._relays and (any(p.pid == peer for p in obs.process.parents)
                                         or self._is_ancestor(peer, obs.process.pid)):
            return  # the member's own ancestor (a notebook server, an IDE, a test runner): never its relay
        relay = self._relays.get(peer)
        start = start_ticks(peer)
        if relay is None or relay.flow != flow or start not in (relay.start, None):  # None: it has exited
            if start is None or (peer in self._members and self._members[peer][1] == flow):
                return  # gone before it was seen; or the flow's own listener, whose sends count already
            relay = self._relays[peer] = _Relay(flow, start, time.monotonic() - (obs.seconds or 0.0))
            self._relays.move_to_end(peer)
            while len(self._relays) > HELD_KEPT:
                self._relays.popitem(last=False)
            self.ledger.member(flow, obs.peer, time.monotonic())
            self._publish()  # the network sensor reports its open connections at once: their baselines
        relay.fed[key] = max(relay.fed.get(key, 0), obs.bytes_sent or 0)
        self._recount(relay)

    def _relayed(self, relay: _Relay, obs: ConnectionObservation, key: str) -> None:
        """A relay's own connection: what it sent since the flow began feeding it (the first look at a
        connection it already had is its baseline)."""
        assert obs.process is not None
        sent = obs.bytes_sent or 0
        if key not in relay.base:  # opened about when the flow began feeding it: all of it counts
            opened = None if obs.seconds is None else time.monotonic() - obs.seconds
            relay.base[key] = 0 if opened is None or opened >= relay.since - RELAY_SLACK_SECONDS else sent
        relay.sent[key] = (max(sent, relay.sent[key][0]) if key in relay.sent else sent,
                           obs.process, obs.remote, obs.remote_port)
        self._recount(relay)

    def _recount(self, relay: _Relay) -> None:
        """The relay's sends count for its flow up to what the flow fed it, its connections in order."""
        if not self.ledger.has_read(relay.flow):
            return
        left = sum(relay.fed.values())
        now = time.monotonic()
        for key, (sent, process, address, port) in relay.sent.items():
            counted = min(max(0, sent - relay.base[key]), left)
            left -= counted
            if counted:
                self.ledger.sent(relay.flow, process, key, address, port, counted, now, measure="relayed")

    def _nameless(self, obs: ConnectionObservation, seen: float | None = None) -> None:
        """A socket seen only at its destruction: the one flow (or the latest of one incident's flows) whose
        opener has just exited sent it. When an opener later than every exited one still runs, the decision
        waits NAMELESS_WAIT_SECONDS: a sender closes its socket a moment before it exits (curl -T), and the
        notice may come in between; after the wait, a sender still running is nobody's guess."""
        now = time.monotonic()
        waited = seen is not None
        seen = now if seen is None else seen
        latest: dict[int, float] = {}  # candidate flow -> its latest exited opener's open
        running = 0.0  # the latest open by an opener still running
        for pid, (at, start, flow) in self._openers.items():
            if seen - at > SENDER_SECONDS or not self.ledger.has_read(flow):
                continue
            if _exited(pid, start):
                latest[flow] = max(at, latest.get(flow, at))
            else:
                running = max(running, at)
        if not waited and running and running >= max(latest.values(), default=0.0):
            self._unplaced.append((now + NAMELESS_WAIT_SECONDS, seen, obs))
            return
        incidents = {self.ledger.incident_of(flow) for flow in latest}
        if not latest or (len(latest) != 1 and (len(incidents) != 1 or None in incidents)):
            return  # flows of different incidents (or not yet alerted) could have sent it: nobody's
        key = _connection_key(obs)
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
            for name, link in descriptors(writer):
                if link != gone:
                    continue
                try:
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
        """Let go of the descriptors held on deleted outputs and of the sock_diag socket."""
        if self._diag is not None:
            self._diag.close()
            self._diag = None
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
        while self._unplaced and self._unplaced[0][0] <= now:
            _, seen, obs = self._unplaced.pop(0)
            self._nameless(obs, seen)
        alerts = self.ledger.decide(now, self.state_of)
        if alerts:
            self.tainted_paths = self.ledger.tainted_paths()
        if self.tainted_pids and now - self._last_live_check >= LIVE_CHECK_SECONDS:
            self._last_live_check = now
            live = frozenset(p for p in self.tainted_pids if start_ticks(p) in (
                self._members[p][0] if p in self._members else -1, self._relays[p].start if p in self._relays else -1))
            if live != self.tainted_pids:
                self.tainted_pids = live
        return alerts

    def due_in(self, now: float) -> float | None:
        dues = [d for d in (self.ledger.next_due(), self._unplaced[0][0] if self._unplaced else None) if d is not None]
        return max(0.0, min(dues) - now) if dues else None

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
        """A process nobody placed that writes or sends: a forked worker of a member, or a process the flow's
        data reaches through a pipe or a Unix socket (_feeding), never a member's ancestor."""
        parent = process.ppid if process is not None and process.ppid else parent_of(pid)
        if parent is not None and parent in self._members:  # a forked worker of a member
            flow = self._members[parent][1]
            if self._inherits(flow, start) and start is not None and \
                    program_of(pid) == self._programs.get(parent, (None, None)):
                self._join(pid, start, flow, parent)
                return flow
        if start is None:
            return None
        found = self._feeding(fd_links(pid))
        if found is None:
            return None
        flow, holder = found
        if self._is_ancestor(pid, holder):
            return None  # an IDE, a shell or a test runner reading its child's output: it would join every flow
        self._join(pid, start, flow, parent_of(pid))
        return flow

    def _feeding(self, links: set[str]) -> tuple[int, int] | None:
        """(flow, member) whose data reaches a process holding `links`: it reads a pipe a member writes into
        (passed to it by a shell, a parent, or over a Unix socket), or holds the peer of a member's connected
        Unix socket. Holding the same end as a member passes nothing between them (the stdin every job of a
        CI runner inherits, a service's journal stream)."""
        peers: dict[int, int] | None = None
        for link in links:
            if link.endswith(READS):
                found = self._pipes.get(link[:-1] + WRITES)
            elif link.startswith("socket:["):
                if peers is None:
                    peers = self._unix_peers()
                peer = peers.get(int(link[8:-1]))
                found = self._pipes.get(f"socket:[{peer}]") if peer else None
            else:
                continue
            if found is not None:
                return found
        return None

    def _unix_peers(self) -> dict[int, int]:
        """Unix socket inode -> its peer's (sock_diag), dumped at most every PEERS_SECONDS; {} if unavailable."""
        when, peers = self._peers
        now = time.monotonic()
        if now - when < PEERS_SECONDS:
            return peers
        try:
            if self._diag is None:
                self._diag = sockdiag.diag_socket()
            peers = sockdiag.unix_peers(self._diag)
        except OSError:
            peers = {}
        self._peers = (now, peers)
        return peers

    def _ancestors(self, member: int) -> list[int]:
        """The member's parent (as recorded when it joined: it may have exited), then its parent's, up to
        ANCESTORS_WALKED, init left out."""
        known = self._members.get(member)
        found: list[int] = []
        current = known[2] if known is not None else parent_of(member)
        while current is not None and current > 1 and len(found) < ANCESTORS_WALKED:
            found.append(current)
            current = parent_of(current)
        return found

    def _is_ancestor(self, pid: int, member: int) -> bool:
        return pid in self._ancestors(member)

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
            self._pipes[link] = (flow, pid)
            self._pipes.move_to_end(link)
        while len(self._pipes) > PIPES_KEPT:
            self._pipes.popitem(last=False)
        for path in files_open_for_writing(pid):
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
        joined_now = {pid}
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
                    joined_now.add(candidate)
                    todo.append(candidate)
                else:  # a sibling, or a child that exec'd: through a shared pipe or socket
                    waiting[candidate] = (started, its_parent, links)
            joined = True
            while joined:  # in `a | b | c`, c reads what b writes only once b has joined
                joined = False
                for candidate, (born, their_parent, their_links) in list(waiting.items()):
                    found = self._feeding(their_links)
                    if found is not None and found[0] == flow:
                        del waiting[candidate]
                        self._join(candidate, born, flow, their_parent, their_links)
                        joined_now.add(candidate)
                        todo.append(candidate)
                        joined = True
        self._follow_passed_pipes(pid, flow, joined_now, seen)

    def _follow_passed_pipes(self, pid: int, flow: int, joined_now: set[int], seen: set[int]) -> None:
        """Pipes the flow's new members write into that none of the processes looked at reads: a read end
        passed to an unrelated process (over a Unix socket, SCM_RIGHTS), or the output an ancestor reads (an
        IDE, a runner: not joined). Ancestors are looked at first; then every process, at most
        PASSED_SCAN of them, and only when a pipe is still unaccounted for (a shell pipeline never is)."""
        written = {link[:-1] for link, (f, holder) in self._pipes.items()
                   if f == flow and holder in joined_now and link.endswith(WRITES)}
        written -= {link[:-1] for link, (f, _) in self._pipes.items() if f == flow and link.endswith(READS)}
        if not written:
            return
        ancestors = self._ancestors(pid)
        for ancestor in ancestors:
            written -= {link[:-1] for link in fd_links(ancestor) if link.endswith(READS)}
        if not written:
            return
        skip = seen | set(ancestors) | {self._own}
        for candidate in _pids()[:PASSED_SCAN]:
            if candidate in skip:
                continue
            self.scanned += 1
            if not any(pipe in written for pipe in _pipe_links(candidate)):
                continue
            links = fd_links(candidate)
            started = start_ticks(candidate)
            if started is not None and any(link[:-1] in written for link in links if link.endswith(READS)):
                self._join(candidate, started, flow, parent_of(candidate), links)

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
        pids = frozenset([*self._members, *self._relays])
        if pids != self.tainted_pids:
            grew = not pids <= self.tainted_pids
            self.tainted_pids = pids
            if grew:
                self.on_joined(pids)


@dataclass(slots=True)
class _Relay:
    """A local listener a flow feeds (a proxy): its sends count for the flow, at most what it was fed."""

    flow: int
    start: int
    since: float  # monotonic: when the sensor first saw the flow's connection to it
    fed: dict[str, int] = field(default_factory=dict)  # the flow's connection to it -> bytes sent on it
    base: dict[str, int] = field(default_factory=dict)  # its connection -> bytes it had sent when first seen
    # its connection -> (bytes sent, its process, remote address, port), as last seen
    sent: dict[str, tuple[int, ProcessInfo, str, int | None]] = field(default_factory=dict)


def _connection_key(obs: ConnectionObservation) -> str:
    """A connection's name in a flow's outputs: namespace, both ends, protocol."""
    return f"{obs.netns}:{obs.local}:{obs.local_port}->{obs.remote}:{obs.remote_port}/{obs.protocol}"


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
