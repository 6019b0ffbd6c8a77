"""Network sensor: outbound TCP connections per process, with bytes sent.

Linux as root: sock_diag dumps of every network namespace in use (containers and `ip netns` included),
with the kernel's per-socket tcp_info byte counters; the owning process is found by socket inode in
/proc/*/fd (only when a new socket appears). Elsewhere, or without root: psutil connections, with bytes
from the process's /proc/<pid>/io write count (an upper bound: it counts every write of the process).

A connection is "outbound" when its local port is not one the namespace listens on. Loopback peers are
not egress and are left out; so are the agent's own connections (forwarding to the SIEM).
The sensor reports a connection when first seen and again when it is gone, with its last byte counts.
While it is open, connections of processes the agent is `interested` in (their process tree read a
protected model) are also reported as "progress" when they sent another PROGRESS_BYTES, at most once per
poll, so an egress alert can show how much of the model has left while the transfer runs; a training
job's trickle of metrics to a dashboard (a KB/s) makes about one record a minute, not one a poll.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.processes import ProcessCache, io_counters
from weightwarden.agent.sensors import sockdiag
from weightwarden.agent.sensors.base import Counters, SensorStatus, privilege
from weightwarden.agent.sensors.files import SensorHealth

log = logging.getLogger(__name__)

PROGRESS_BYTES = 64 << 10
_OUTBOUND_STATES = {"ESTABLISHED", "SYN_SENT", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "LAST_ACK", "CLOSING"}


@dataclass(frozen=True, slots=True)
class ConnectionObservation:
    phase: str  # opened | progress | closed
    process: ProcessInfo | None
    local: str
    local_port: int
    remote: str
    remote_port: int
    netns: int | None
    bytes_sent: int | None
    bytes_received: int | None
    bytes_source: str | None  # tcp_info | process-io
    seconds: float = 0.0


@dataclass(slots=True)
class _Conn:
    key: tuple[int, int]
    process: ProcessInfo | None
    local: str
    local_port: int
    remote: str
    remote_port: int
    netns: int | None
    first_seen: float
    bytes_sent: int | None = None
    bytes_received: int | None = None
    wchar_at_open: int | None = None
    source: str | None = None
    reported_sent: int | None = None  # bytes sent when last reported (progress only when it grew)


def sock_diag_unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "sock_diag is Linux only"
    if os.geteuid() != 0:
        return "sock_diag of other users' sockets and other namespaces needs root"
    try:
        sock = sockdiag.diag_socket()
        try:
            sockdiag.dump_tcp(sock)
        finally:
            sock.close()
    except OSError as error:
        return f"NETLINK_SOCK_DIAG unavailable: {error.strerror or error}"
    return None


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def socket_owners(inodes: set[int]) -> dict[int, int]:
    """socket inode -> pid, from /proc/*/fd links (`socket:[12345]`)."""
    owners: dict[int, int] = {}
    own = os.getpid()
    for pid in psutil.pids():
        if pid == own or len(owners) == len(inodes):
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inode = int(link[8:-1])
                if inode in inodes:
                    owners.setdefault(inode, pid)
    return owners


class NetworkSensor:
    name = "network"

    def __init__(self, cache: ProcessCache, sink: Callable[[ConnectionObservation], None],
                 on_health: Callable[[SensorHealth], None], *, interval: float = 1.0,
                 use_sock_diag: bool = True, reason: str = "",
                 interested: Callable[[ProcessInfo | None], bool] | None = None) -> None:
        self.cache = cache
        self._sink = sink
        self._on_health = on_health
        self.interval = interval
        self.use_sock_diag = use_sock_diag
        self.reason = reason
        self._interested = interested
        self.counters = Counters()
        self._conns: dict[tuple[int, int], _Conn] = {}
        self._diag: dict[int, socket.socket] = {}  # netns inode -> sock_diag socket inside it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own_ns: int | None = None
        self._state = "stopped"
        self._polls = 0
        self._namespaces: dict[int, str] = {}

    def start(self) -> None:
        self._stop.clear()
        try:
            self._own_ns = os.stat("/proc/self/ns/net").st_ino
        except OSError:
            self._own_ns = None
        self._state = "running" if self.use_sock_diag else "degraded"
        self._poll()  # what is already open is the baseline, reported as opened once
        self._thread = threading.Thread(target=self._run, name="ww-network", daemon=True)
        self._thread.start()
        if self.use_sock_diag:
            self._on_health(SensorHealth(self.name, "running",
                                         "sock_diag per network namespace: outbound TCP with bytes sent"))
        else:
            self._on_health(SensorHealth(self.name, "degraded",
                                         f"psutil connections with per-process write counts ({self.reason})"))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for sock in self._diag.values():
            sock.close()
        self._diag.clear()
        self._state = "stopped"

    def status(self) -> SensorStatus:
        method = "sock_diag" if self.use_sock_diag else "psutil"
        message = (f"{len(self._conns)} outbound connections open, {len(self._diag) or 1} network namespaces"
                   if self.use_sock_diag else f"psutil: {self.reason}")
        return SensorStatus(self.name, self._state, method, privilege(), message, self.counters.events,
                            self.counters.rate(), self.counters.drops, 0)

    def connections(self) -> list[_Conn]:
        return list(self._conns.values())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._poll()
            except Exception:
                log.exception("network poll failed")

    def _poll(self) -> None:
        self._polls += 1
        current = self._sock_diag_poll() if self.use_sock_diag else self._psutil_poll()
        now = time.monotonic()
        for key, conn in current.items():
            known = self._conns.get(key)
            if known is None:
                self._conns[key] = conn
                self.counters.add()
                conn.reported_sent = conn.bytes_sent
                self._sink(self._observation("opened", conn, now))
            else:
                known.bytes_sent, known.bytes_received = conn.bytes_sent, conn.bytes_received
                if known.source == "process-io" and known.process is not None:
                    io = io_counters(known.process.pid)
                    if io and known.wchar_at_open is not None:
                        known.bytes_sent = io.get("wchar", 0) - known.wchar_at_open
                self._report_progress(known, now)
        for key in [k for k in self._conns if k not in current]:
            conn = self._conns.pop(key)
            self.counters.add()
            self._sink(self._observation("closed", conn, now))

    def _report_progress(self, conn: _Conn, now: float) -> None:
        if self._interested is None or (conn.bytes_sent or 0) < (conn.reported_sent or 0) + PROGRESS_BYTES:
            return
        if not self._interested(conn.process):  # only trees that read a model: others cost nothing
            return
        conn.reported_sent = conn.bytes_sent
        self.counters.add()
        self._sink(self._observation("progress", conn, now))

    def _observation(self, phase: str, conn: _Conn, now: float) -> ConnectionObservation:
        return ConnectionObservation(phase, conn.process, conn.local, conn.local_port, conn.remote, conn.remote_port,
                                     conn.netns, conn.bytes_sent, conn.bytes_received, conn.source,
                                     round(now - conn.first_seen, 3))

    # ------------------------------------------------------------------ sock_diag

    def _namespace_paths(self) -> dict[int, str]:
        if self._polls % 5 == 1 or not self._namespaces:  # namespaces come and go slowly
            found: dict[int, str] = {}
            for pid in psutil.pids():
                path = f"/proc/{pid}/ns/net"
                try:
                    inode = os.stat(path).st_ino
                except OSError:
                    continue
                found.setdefault(inode, path)
            self._namespaces = found
        return self._namespaces

    def _diag_socket(self, netns: int, path: str) -> socket.socket | None:
        sock = self._diag.get(netns)
        if sock is None:
            try:
                sock = sockdiag.diag_socket() if netns == self._own_ns else sockdiag.socket_in_netns(path)
            except OSError as error:
                log.debug("cannot enter network namespace %s: %s", path, error)
                return None
            self._diag[netns] = sock
        return sock

    def _sock_diag_poll(self) -> dict[tuple[int, int], _Conn]:
        namespaces = self._namespace_paths()
        if self._own_ns is not None:
            namespaces = {self._own_ns: "/proc/self/ns/net", **namespaces}
        current: dict[tuple[int, int], _Conn] = {}
        fresh: list[tuple[int, sockdiag.TcpSocket]] = []
        for netns, path in namespaces.items():
            sock = self._diag_socket(netns, path)
            if sock is None:
                continue
            try:
                sockets = sockdiag.dump_tcp(sock)
            except OSError:  # the namespace is gone
                self._diag.pop(netns, None)
                sock.close()
                continue
            listening = {s.local_port for s in sockets if s.state == "LISTEN"}
            for s in sockets:
                if s.state not in _OUTBOUND_STATES or s.local_port in listening or _is_loopback(s.remote):
                    continue
                if s.inode == 0:  # orphaned (closed by its process, still flushing): nothing to attribute
                    continue
                key = (netns, s.inode)
                known = self._conns.get(key)
                if known is not None:
                    current[key] = _Conn(key, known.process, s.local, s.local_port, s.remote, s.remote_port,
                                         netns, known.first_seen, s.bytes_sent, s.bytes_received,
                                         source="tcp_info")
                else:
                    fresh.append((netns, s))
        if fresh:
            owners = socket_owners({s.inode for _, s in fresh})
            now = time.monotonic()
            own = os.getpid()
            for netns, s in fresh:
                pid = owners.get(s.inode)
                if pid == own:
                    continue
                process = self.cache.process_info(pid) if pid is not None else None
                current[(netns, s.inode)] = _Conn((netns, s.inode), process, s.local, s.local_port, s.remote,
                                                  s.remote_port, netns, now, s.bytes_sent, s.bytes_received,
                                                  source="tcp_info")
        return current

    # ------------------------------------------------------------------ psutil

    def _psutil_poll(self) -> dict[tuple[int, int], _Conn]:
        current: dict[tuple[int, int], _Conn] = {}
        try:
            conns = psutil.net_connections(kind="tcp")
        except (psutil.AccessDenied, OSError):
            return {key: conn for key, conn in self._conns.items()}
        listening = {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.laddr}
        own = os.getpid()
        now = time.monotonic()
        for c in conns:
            if not c.raddr or c.status == psutil.CONN_LISTEN or c.laddr.port in listening:
                continue
            if _is_loopback(c.raddr.ip) or c.pid == own:
                continue
            key = (hash((c.laddr.ip, c.laddr.port, c.raddr.ip, c.raddr.port)), c.pid or 0)
            known = self._conns.get(key)
            if known is not None:
                current[key] = known
                continue
            process = self.cache.process_info(c.pid) if c.pid else None
            io = io_counters(c.pid) if c.pid else None
            current[key] = _Conn(key, process, c.laddr.ip, c.laddr.port, c.raddr.ip, c.raddr.port, None, now,
                                 wchar_at_open=io.get("wchar") if io else None, source="process-io")
        return current
