"""Taskstats (generic netlink): the kernel's per-task accounting record, sent as each task exits.

It gives the bytes a process read (read_char) at the moment it exits, even when its parent reaps it
microseconds later and /proc/<pid>/io is gone: with the rchar taken when it opened a protected model,
that is how much of the model a short `cat` or `dd` read. The kernel rounds read_char down to whole KiB.
Registered for every CPU's exits (TASKSTATS_CMD_ATTR_REGISTER_CPUMASK); root only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
from collections.abc import Callable

from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.base import SensorThread

log = logging.getLogger(__name__)

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
TASKSTATS_CMD_GET = 1
TASKSTATS_CMD_ATTR_REGISTER_CPUMASK = 3
TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK = 4
TASKSTATS_TYPE_PID = 1
TASKSTATS_TYPE_STATS = 3
TASKSTATS_TYPE_AGGR_PID = 4
NLM_F_REQUEST = 1
# struct taskstats (linux/taskstats.h, version >= 8): offsets of the fields we read
_AC_COMM, _AC_PID, _READ_CHAR = 80, 128, 216  # ac_comm: char[32], NUL-terminated

_NLMSGHDR = struct.Struct("=IHHII")
_GENL = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    raw = _ATTR.pack(_ATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _attrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while start + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, start)
        if length < _ATTR.size:
            break
        found[kind & 0x3FFF] = data[start + _ATTR.size:start + length]
        start += (length + 3) & ~3
    return found


def _request(sock: socket.socket, family: int, cmd: int, attrs: bytes) -> None:
    body = _GENL.pack(cmd, 1, 0) + attrs
    sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), family, NLM_F_REQUEST, 1, 0) + body)


def family_id(sock: socket.socket) -> int:
    _request(sock, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, _attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"))
    data = sock.recv(65536)
    length = _NLMSGHDR.unpack_from(data)[0]
    attrs = _attrs(data, _NLMSGHDR.size + _GENL.size, length)
    if CTRL_ATTR_FAMILY_ID not in attrs:
        raise OSError("no TASKSTATS generic netlink family")
    return int(struct.unpack_from("=H", attrs[CTRL_ATTR_FAMILY_ID])[0])


class TaskstatsListener:
    """Feeds `cache.on_exit_io(pid, read_char)` for every process exit; `on_lost` hears of lost records."""

    def __init__(self, cache: ProcessCache, on_lost: Callable[[], None] = lambda: None, *,
                 receive_buffer: int = 8 << 20) -> None:
        self.cache = cache
        self.receive_buffer = receive_buffer
        self._on_lost = on_lost
        self._sock: socket.socket | None = None
        self._family = 0
        self._mask = b""
        self._thread = SensorThread("ww-taskstats", self._run)
        self.messages = 0
        self.lost = 0

    def start(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC)
        try:
            sock.bind((0, 0))
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, 33, self.receive_buffer)  # SO_RCVBUFFORCE: ride out exit storms
            self._family = family_id(sock)
            self._mask = f"0-{(os.cpu_count() or 1) - 1}\0".encode()
            _request(sock, self._family, TASKSTATS_CMD_GET, _attr(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, self._mask))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                _request(self._sock, self._family, TASKSTATS_CMD_GET,
                         _attr(TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK, self._mask))
            self._sock.close()
            self._sock = None

    def pause(self) -> None:
        self._thread.pause()

    def resume(self) -> None:
        self._thread.resume()

    def _run(self) -> None:
        assert self._sock is not None
        sock, waker = self._sock, self._thread.waker
        while not self._thread.stopping.is_set():
            if not self._thread.wait_resumed(0.2):
                continue
            ready, _, _ = select.select([sock.fileno(), waker.fileno()], [], [], 30.0)
            if waker.fileno() in ready:
                waker.drain()
            if self._thread.paused:
                continue
            if sock.fileno() not in ready:
                continue
            while True:
                try:
                    data = sock.recv(1 << 16, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:  # ENOBUFS: some exits were not accounted; bytes read stay unmeasured
                    self.lost += 1
                    self._on_lost()
                    continue
                try:
                    self._parse(data)
                except Exception:
                    log.exception("taskstats: cannot parse a message")

    def _parse(self, data: bytes) -> None:
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind = _NLMSGHDR.unpack_from(data, offset)[:2]
            if length < _NLMSGHDR.size:
                return
            if kind == self._family:
                top = _attrs(data, offset + _NLMSGHDR.size + _GENL.size, offset + length)
                nested = top.get(TASKSTATS_TYPE_AGGR_PID)
                if nested is not None:
                    inner = _attrs(nested, 0, len(nested))
                    pid_raw, stats = inner.get(TASKSTATS_TYPE_PID), inner.get(TASKSTATS_TYPE_STATS)
                    if pid_raw is not None and stats is not None and len(stats) >= _READ_CHAR + 8:
                        pid = struct.unpack_from("=I", pid_raw)[0]
                        # the layout check: ac_pid must be the pid the message is about
                        if struct.unpack_from("=I", stats, _AC_PID)[0] == pid:
                            self.messages += 1
                            comm = stats[_AC_COMM:_AC_COMM + 32].split(b"\0", 1)[0]
                            self.cache.on_exit_io(pid, struct.unpack_from("=Q", stats, _READ_CHAR)[0],
                                                  comm.decode("utf-8", "backslashreplace") or None)
            offset += (length + 3) & ~3
