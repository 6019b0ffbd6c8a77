"""Process sensor: exec, fork and exit events feeding the process cache.

Linux as root: the kernel's proc connector (NETLINK_CONNECTOR, CN_IDX_PROC) pushes every fork, exec,
comm change and exit as it happens, so even a `cp` that lives for a millisecond is snapshotted at exec.
A lost message (ENOBUFS: the socket buffer filled during a burst) makes the cache re-read every process
from /proc, then a health report says so; lost taskstats exit records are reported too. Without root, or
on another OS, psutil polling stands in (processes shorter than the poll interval are then only
attributed while alive: the status says so).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import struct
import sys
from collections.abc import Callable

import psutil

from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.base import Counters, SensorStatus, SensorThread, privilege
from weightwarden.agent.sensors.files import SensorHealth
from weightwarden.agent.sensors.taskstats import TaskstatsListener

log = logging.getLogger(__name__)

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
NLMSG_DONE = 3
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x1
PROC_EVENT_EXEC = 0x2
PROC_EVENT_COMM = 0x200
PROC_EVENT_EXIT = 0x80000000
SO_RCVBUFFORCE = 33  # root may set a receive buffer beyond net.core.rmem_max

_NLMSGHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_PROC_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns


def proc_connector_unavailable() -> str | None:
    """Why the proc connector cannot be used here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) for the proc connector"
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        sock.close()
    except OSError as error:
        return f"NETLINK_CONNECTOR unavailable: {error.strerror or error}"
    return None


def _subscription(op: int) -> bytes:
    payload = struct.pack("=I", op)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn


class ProcConnectorSensor:
    name = "processes"

    def __init__(self, cache: ProcessCache, on_health: Callable[[SensorHealth], None], *,
                 receive_buffer: int = 8 << 20) -> None:
        self.cache = cache
        self._on_health = on_health
        self.receive_buffer = receive_buffer  # large, to ride out exec storms (tests make it small)
        self.counters = Counters()
        self._thread = SensorThread("ww-proc-connector", self._run)
        self._sock: socket.socket | None = None
        self._state = "stopped"
        self._message = ""
        self._taskstats: TaskstatsListener | None = None
        self.taskstats_problem = ""

    def start(self) -> None:
        self._taskstats = TaskstatsListener(self.cache, self._exits_lost, receive_buffer=self.receive_buffer)
        try:
            self._taskstats.start()
        except OSError as error:  # bytes read by processes that exit at once stay unmeasured
            self._taskstats = None
            self.taskstats_problem = f"taskstats unavailable ({error.strerror or error})"
        self.cache.exit_accounting = self._taskstats is not None  # the access sensor waits for exit records
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.receive_buffer)  # beyond rmem_max
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        sock.bind((0, CN_IDX_PROC))
        sock.send(_subscription(PROC_CN_MCAST_LISTEN))
        self._sock = sock
        # Subscribe first, then seed: a process started in between is seen by one or the other.
        self.cache.seed()
        self._state, self._message = "running", "exec/fork/exit events from the kernel" + (
            "; exit accounting from taskstats" if self._taskstats else f"; {self.taskstats_problem}")
        self._thread.start()
        self._on_health(SensorHealth(self.name, "running", "proc connector: exec/fork/exit events, process cache"))

    def stop(self) -> None:
        self._thread.stop()
        if self._taskstats is not None:
            self._taskstats.stop()
            self._taskstats = None
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.send(_subscription(PROC_CN_MCAST_IGNORE))
            self._sock.close()
            self._sock = None
        self._state = "stopped"

    def status(self) -> SensorStatus:
        return SensorStatus(self.name, self._state, "proc-connector", privilege(), self._message,
                            self.counters.events, self.counters.rate(), self.counters.drops, 0)

    def pause(self) -> None:
        """Stop reading until resume(): messages pile up in the socket buffers (tests: a real ENOBUFS)."""
        self._thread.pause()
        if self._taskstats is not None:
            self._taskstats.pause()

    def resume(self) -> None:
        self._thread.resume()
        if self._taskstats is not None:
            self._taskstats.resume()

    def _run(self) -> None:
        assert self._sock is not None
        sock, thread = self._sock, self._thread
        last_prune = 0.0
        while not thread.stopping.is_set():
            if not thread.wait_resumed(0.2):
                continue
            ready, _, _ = select.select([sock.fileno(), thread.waker.fileno()], [], [], 10.0)
            if thread.waker.fileno() in ready:
                thread.waker.drain()
            if thread.paused:
                continue
            if sock.fileno() not in ready:
                self.cache.prune()
                continue
            while True:  # drain everything queued before going back to select
                try:
                    data = sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError as error:
                    if error.errno == errno.ENOBUFS:
                        self._lost()
                        continue
                    log.warning("proc connector: %s", error)
                    break
                try:
                    self._parse(data)
                except Exception:  # one bad message never stops the sensor
                    log.exception("proc connector: cannot parse a message")
            last_prune += 1
            if last_prune > 1000:
                self.cache.prune()
                last_prune = 0

    def _lost(self) -> None:
        # Re-read first, report after: once the report is out, the cache already knows every process
        # whose exec news was lost (exits in the gap are found when a lookup sees /proc without them).
        self.counters.drop()
        running = self.cache.seed()
        self._on_health(SensorHealth(self.name, "degraded",
                                     f"proc connector lost messages (ENOBUFS); re-read all {running} running "
                                     "processes from /proc"))

    def _exits_lost(self) -> None:
        # No rescan can bring these back: the bytes a process read are known only as it exits.
        self.counters.drop()
        self._on_health(SensorHealth(self.name, "degraded", "taskstats lost exit records (ENOBUFS): bytes read "
                                                            "by processes that exited just then are unmeasured"))

    def _parse(self, data: bytes) -> None:
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length = _NLMSGHDR.unpack_from(data, offset)[0]
            if length < _NLMSGHDR.size:
                return
            body = offset + _NLMSGHDR.size + _CN_MSG.size
            if body + _PROC_EVENT.size <= offset + length:
                what = _PROC_EVENT.unpack_from(data, body)[0]
                self._event(what, data, body + _PROC_EVENT.size)
            offset += (length + 3) & ~3

    def _event(self, what: int, data: bytes, at: int) -> None:
        if what == PROC_EVENT_FORK:
            _ppid, ptgid, cpid, ctgid = struct.unpack_from("=IIII", data, at)
            if cpid == ctgid:  # a new process, not a thread
                self.counters.add()
                self.cache.on_fork(ptgid, ctgid)
        elif what == PROC_EVENT_EXEC:
            pid, tgid = struct.unpack_from("=II", data, at)
            self.counters.add()
            self.cache.on_exec(tgid)
        elif what == PROC_EVENT_COMM:
            pid, tgid = struct.unpack_from("=II", data, at)
            if pid == tgid:
                comm = data[at + 8:at + 24].split(b"\0")[0].decode("utf-8", "backslashreplace")
                self.cache.on_comm(tgid, comm)
        elif what == PROC_EVENT_EXIT:
            pid, tgid = struct.unpack_from("=II", data, at)
            if pid == tgid:
                self.counters.add()
                self.cache.on_exit(tgid)


class PollingProcessSensor:
    """psutil stand-in: new pids are snapshotted, vanished ones marked exited, every `interval` s."""

    name = "processes"

    def __init__(self, cache: ProcessCache, on_health: Callable[[SensorHealth], None], reason: str,
                 interval: float = 0.5) -> None:
        self.cache = cache
        self._on_health = on_health
        self.reason = reason
        self.interval = interval
        self.counters = Counters()
        self._thread = SensorThread("ww-proc-poll", self._run)
        self._known: set[int] = set()
        self._state = "stopped"

    def start(self) -> None:
        self._known = set(psutil.pids())
        self.cache.seed()
        self._state = "degraded"
        self._thread.start()
        self._on_health(SensorHealth(self.name, "degraded",
                                     f"polling processes every {self.interval} s with psutil ({self.reason}); "
                                     "processes shorter than that may go unattributed"))

    def stop(self) -> None:
        self._thread.stop()
        self._state = "stopped"

    def status(self) -> SensorStatus:
        return SensorStatus(self.name, self._state, "psutil", privilege(),
                            f"polling every {self.interval} s: {self.reason}",
                            self.counters.events, self.counters.rate(), 0, 0)

    def _run(self) -> None:
        while not self._thread.stopping.wait(self.interval):
            try:
                now = set(psutil.pids())
                for pid in now - self._known:
                    self.cache.on_exec(pid)
                for pid in self._known - now:
                    self.cache.on_exit(pid)
                self.counters.add(len(now ^ self._known))
                self._known = now
                self.cache.prune()
            except Exception:
                log.exception("process polling failed")
