"""Network sensor: outbound TCP connections and connected UDP flows per process, with bytes sent.

Linux as root: sock_diag dumps every poll in every network namespace in use (containers and `ip netns`
included), with the kernel's per-socket tcp_info byte counters; the owning process is found by socket
inode in /proc/*/fd (only when a new socket appears). Beside the polls, one reader thread, blocked on a
netlink socket per followed namespace, receives the kernel's notice of every TCP and UDP socket's
destruction (see sockdiag): a TCP connection's final counts, and connections that opened and closed
between two polls, which polling alone never saw.

What the record says, honestly:
- TCP bytes_sent is the payload that left the socket, each byte once (tcpi_bytes_sent less
  tcpi_bytes_retrans: a lossy upload is not overstated by its retransmissions, and data sent but not yet
  acknowledged when the socket died still counts as gone); bytes_acked, what the peer acknowledged, rides
  along. `final` says the counts are the kernel's at the socket's destruction, not the last poll's.
- A socket seen only at its destruction has no known process: the notice carries no inode or uid (both
  are zero by then) and its file is gone from /proc. Its record has no process and `owner` says why.
  A socket a poll saw keeps the process learnt then (joined to its notice by the socket cookie).
- UDP: the kernel keeps no per-socket or per-process byte count of datagrams sent (sock_diag has none,
  /proc/<pid>/io counts write() but not send/sendto/sendmsg, the usual UDP and QUIC calls). The best
  measure without eBPF or netfilter accounting is the namespace's bytes transmitted on its non-loopback
  interfaces while the flow lived: an upper bound, exact when the flow is the namespace's only traffic
  (a container), loose in a busy host namespace. bytes_source "netns-egress-bound" names it. Only
  connected UDP sockets name a destination; an unconnected one (sendto each datagram) is not reported.

A connection is "outbound" when its local port is not one the namespace listens on (TCP) or has bound
unconnected (UDP). Loopback peers are not egress and are left out; so are the agent's own connections
(forwarding to the SIEM) when a poll saw them. While a flow that read a protected model runs (`tainted`
processes), two more kinds are reported for its processes:
- a connection a listener accepted from a remote host, when a tainted process holds the listener
  (`python3 -m http.server` serving the model): what a server sends is egress. A download that ends
  before a poll saw it is placed when its destroy notice comes, by the listener's holders, up to
  SERVED_LATE_SECONDS later (the server may join the flow after the notice); a socket seen only at its
  destruction is outbound only if its port was not listening then (asked of the kernel if unknown);
- a loopback connection to a local listener, with the listener's process as `peer` (a proxy the flow
  feeds: agent/pipeline/flows.py counts its sends).
Just after processes join a flow, polls come every BURST_INTERVAL for BURST_SECONDS: a transfer through a
proxy over a fast link can start and end within one urgent interval.

The sensor reports a connection when a poll first sees it and again when it is gone, with its last byte
counts; a connection seen only by its destruction is reported once, closed. While it is open, connections of
processes the agent is `interested` in (their process tree read a protected model) are also reported as
"progress" when they sent another PROGRESS_BYTES, at most once per poll, so an egress alert can show how
much of the model has left while the transfer runs; a training job's trickle of metrics to a dashboard (a
KB/s) makes about one record a minute, not one a poll.

Elsewhere, or without root: psutil TCP connections, with bytes from the process's /proc/<pid>/io write
count ("process-io"): it counts every write() of the process, but not send()/sendto(), so it is neither
exact nor a bound.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

import psutil

from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.processes import ProcessCache, io_counters
from weightwarden.agent.sensors import sockdiag
from weightwarden.agent.sensors.base import Counters, SensorStatus, SensorThread, privilege
from weightwarden.agent.sensors.destroy_notices import read_notices
from weightwarden.agent.sensors.files import SensorHealth

log = logging.getLogger(__name__)

PROGRESS_BYTES = 64 << 10
URGENT_INTERVAL = 0.05  # seconds between polls while a flow that read a model runs
# Just after processes join a flow (wake()): a transfer through a local proxy or from a local server over a
# fast link can start and end within one urgent interval, and only a poll names its processes (a socket's
# destruction notice names none)
BURST_SECONDS = 0.25
BURST_INTERVAL = 0.005
SERVED_LATE_SECONDS = 2.0
LISTEN_REFRESH_SECONDS = 0.01
RECENT_DESTROYED = 4096  # keys of sockets already reported closed (a poll racing the notice adds nothing)
MISSING_POLLS = 3  # a socket gone from the dumps this many polls with no notice is closed as last polled
NAMESPACE_MISSES = 2  # a namespace no process is in for this many rediscoveries is no longer followed
_OUTBOUND_STATES = {"ESTABLISHED", "SYN_SENT", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "LAST_ACK", "CLOSING"}
_UDP_CONNECTED = "ESTABLISHED"  # sock_diag reports a connected UDP socket as state 1
UNKNOWN_OWNER = "unknown: the socket opened and closed between two polls, and the kernel's notice of its " \
                "destruction names no process or user"
NETNS_BOUND = "netns-egress-bound"


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
    bytes_source: str | None  # tcp_info | netns-egress-bound (UDP, an upper bound) | process-io
    seconds: float | None = 0.0  # None: seen only at its destruction, its age is unknown
    protocol: str = "tcp"  # tcp | udp
    final: bool = False  # the counts are the kernel's at the socket's destruction, not the last poll's
    owner: str | None = None  # how the process was learnt ("socket-inode"), or why it is unknown
    bytes_acked: int | None = None  # TCP: payload the peer acknowledged
    # a loopback connection of a tainted process to a local listener: the listener's process (a local proxy
    # that may carry what it is fed further: ssh -D, a SOCKS or HTTP proxy, a port forwarder)
    peer: ProcessInfo | None = None


@dataclass(slots=True)
class _Conn:
    key: tuple[int, int]
    process: ProcessInfo | None
    local: str
    local_port: int
    remote: str
    remote_port: int
    netns: int | None
    first_seen: float | None
    bytes_sent: int | None = None
    bytes_received: int | None = None
    wchar_at_open: int | None = None
    source: str | None = None
    reported_sent: int | None = None  # bytes sent when last reported (progress only when it grew)
    protocol: str = "tcp"
    bytes_acked: int | None = None
    owner: str | None = None
    tx_base: int | None = None  # UDP: the namespace's bytes transmitted before the flow was first seen
    missing: int = 0  # polls in a row whose dump did not have it
    peer: ProcessInfo | None = None  # ConnectionObservation.peer


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


def destroy_notices_unavailable() -> str | None:
    """Why the kernel's socket-destroy notices cannot be received here, or None."""
    if not sys.platform.startswith("linux"):
        return "socket destroy notices are Linux only"
    try:
        sockdiag.destroy_socket().close()
    except OSError as error:
        return f"cannot join the sock_diag destroy groups: {error.strerror or error}"
    return None


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def netns_tx_bytes(ns_path: str, netns: int) -> int | None:
    """Bytes the namespace transmitted on its non-loopback interfaces (/proc/<pid>/net/dev of a process
    in it), or None when that process has gone or moved."""
    base = ns_path.rsplit("/ns/net", 1)[0]
    try:
        if os.stat(ns_path).st_ino != netns:
            return None
        with open(f"{base}/net/dev", "rb") as f:
            lines = f.read().decode("ascii", "replace").splitlines()[2:]
    except OSError:
        return None
    total = 0
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() != "lo" and len(fields) >= 9:
            total += int(fields[8])
    return total


def _feeds_a_listener(s: sockdiag.TcpSocket, listening: set[int]) -> bool:
    """A TCP connection to a local listener from an unlistened port (a client feeding a local proxy)."""
    return (s.protocol == socket.IPPROTO_TCP and s.state in _OUTBOUND_STATES and _is_loopback(s.remote)
            and s.remote_port in listening and s.local_port not in listening)


def _served(s: sockdiag.TcpSocket, listening: set[int]) -> bool:
    """A TCP connection a listener here accepted from a remote host: what a local server sends is egress."""
    return (s.protocol == socket.IPPROTO_TCP and s.state != "LISTEN" and s.remote_port != 0
            and not _is_loopback(s.remote) and s.local_port in listening)


def socket_holders(inodes: set[int]) -> dict[int, set[int]]:
    """socket inode -> every pid holding it (a listener shared by a server's forked workers)."""
    holders: dict[int, set[int]] = {}
    for pid, inode in _sockets_held(psutil.pids(), inodes):
        holders.setdefault(inode, set()).add(pid)
    return holders


def socket_owners(inodes: set[int], first: Collection[int] = (), *, only_first: bool = False) -> dict[int, int]:
    """socket inode -> pid, from /proc/*/fd links (`socket:[12345]`); the pids in `first` are looked at before
    the rest (processes of a tainted flow: a short upload's socket is found before it is gone), or alone."""
    owners: dict[int, int] = {}
    for pid, inode in _sockets_held([*first] if only_first else [*first, *psutil.pids()], inodes,
                                    enough=len(inodes)):
        owners.setdefault(inode, pid)
    return owners


def _sockets_held(pids: Iterable[int], inodes: set[int], *, enough: int | None = None) -> Iterator[tuple[int, int]]:
    """(pid, socket inode) for each of `inodes` a process holds (/proc/<pid>/fd links), the agent's own left
    out; stops looking at further processes once `enough` distinct inodes are found."""
    own = os.getpid()
    found: set[int] = set()
    for pid in pids:
        if pid == own or (enough is not None and len(found) >= enough):
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
            if link.startswith("socket:[") and (inode := int(link[8:-1])) in inodes:
                found.add(inode)
                yield pid, inode


class NetworkSensor:
    name = "network"

    def __init__(self, cache: ProcessCache, sink: Callable[[ConnectionObservation], None],
                 on_health: Callable[[SensorHealth], None], *, interval: float = 1.0,
                 use_sock_diag: bool = True, reason: str = "",
                 interested: Callable[[ProcessInfo | None], bool] | None = None,
                 destroy_notices: bool = True, urgent: Callable[[], bool] | None = None,
                 tainted: Callable[[], Collection[int]] | None = None) -> None:
        """`urgent`: while it returns True (a flow that read a protected model is running), polls come every
        URGENT_INTERVAL, so a short upload is seen with its process before its socket is destroyed.
        `tainted`: the processes of flows that read a protected model; their accepted connections (a model
        served to a remote host) and their loopback connections to local listeners (proxies) are reported
        too."""
        self._tainted = tainted
        self._checked: OrderedDict[tuple[int, int], frozenset[int]] = OrderedDict()  # socket -> tainted set
        # its owner was looked for among (not found: looked for again only when the set changes)
        self._announce: frozenset[int] = frozenset()
        self._burst_until = 0.0  # monotonic: polls come every BURST_INTERVAL until then (wake())
        self._reader_diag: dict[int, socket.socket] = {}  # netns -> the destroy reader's sock_diag socket
        self._listen_cache: dict[int, tuple[float, set[int]]] = {}  # netns -> (when, its listening ports)
        self._listeners: dict[tuple[int, int], int] = {}  # (netns, port) -> its listening socket's inode (last poll)
        # accepted connections destroyed before a poll saw them: (when, netns, socket), placed by _served_late
        self._unplaced: deque[tuple[float, int, sockdiag.TcpSocket]] = deque(maxlen=1024)
        self._servers: dict[tuple[int, int], tuple[int, frozenset[int]]] = {}  # (netns, port) -> (listener inode,
        # the processes holding it): whose accepted connections are whose
        self.cache = cache
        self._urgent = urgent
        self._sink = sink
        self._on_health = on_health
        self.interval = interval
        self.use_sock_diag = use_sock_diag
        self.reason = reason
        self._interested = interested
        self.counters = Counters()
        self._lock = threading.Lock()  # _conns and the tables below: the poll and the reader thread share them
        self._conns: dict[tuple[int, int], _Conn] = {}
        self._destroyed: OrderedDict[tuple[int, int], None] = OrderedDict()  # recently reported closed
        self._ignored: OrderedDict[tuple[int, int], None] = OrderedDict()  # the agent's own sockets
        self._listening: dict[int, set[int]] = {}  # netns -> TCP ports it listens on (last poll)
        self._udp_bound: dict[int, set[int]] = {}  # netns -> ports of its unconnected UDP sockets
        self._tx: dict[int, int] = {}  # netns -> bytes transmitted at the last poll (UDP bounds start there)
        self._diag: dict[int, socket.socket] = {}  # netns inode -> sock_diag socket inside it
        self._destroy: dict[int, socket.socket] = {}  # netns inode -> its destroy-notice socket
        self._retired: list[socket.socket] = []  # destroy sockets the reader closes (it polls them)
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by wake() or stop(): poll now (or leave)
        self._suspects: frozenset[int] = frozenset()  # pids whose sockets are looked for first (wake())
        self._thread: threading.Thread | None = None
        self._reader = SensorThread("ww-network-destroy", self._read_destroyed)
        self._want_destroy = destroy_notices
        self.destroy_reason: str | None = None  # why destroy notices are not used, when they are not
        self.destroy_received = 0
        self.destroy_lost = 0
        self._own_ns: int | None = None
        self._state = "stopped"
        self._polls = 0
        self._namespaces: dict[int, str] = {}
        self._ns_misses: dict[int, int] = {}
        self._unreachable: dict[int, str] = {}  # netns -> why it cannot be entered (the unit forbids setns)

    def start(self) -> None:
        self._stop.clear()
        try:
            self._own_ns = os.stat("/proc/self/ns/net").st_ino
        except OSError:
            self._own_ns = None
        self._state = "running" if self.use_sock_diag else "degraded"
        if not self.use_sock_diag:
            self.destroy_reason = "needs the sock_diag sensor (root)"
        elif not self._want_destroy:
            self.destroy_reason = "turned off"
        else:
            self.destroy_reason = destroy_notices_unavailable()
        if self.destroy_reason is None:
            self._reader.start()
        self._poll()  # what is already open is the baseline, reported as opened once
        self._thread = threading.Thread(target=self._run, name="ww-network", daemon=True)
        self._thread.start()
        if self.use_sock_diag:
            exact = ("; final counts from the kernel's socket-destroy notices" if self.destroy_reason is None
                     else f"; no socket-destroy notices ({self.destroy_reason}): final counts are the last poll's")
            self._on_health(SensorHealth(self.name, "running",
                                         "sock_diag per network namespace: outbound TCP with bytes sent, "
                                         f"connected UDP with a namespace bound{exact}"))
        else:
            self._on_health(SensorHealth(self.name, "degraded",
                                         f"psutil connections with per-process write counts ({self.reason})"))

    def wake(self, suspects: Collection[int] = ()) -> None:
        """Poll now, not at the end of the current wait, and look for new sockets' owners among `suspects`
        first: processes have just joined a tainted flow (one that opened a tainted output may upload it
        within milliseconds; a socket seen only at its destruction has no process). Any thread may call it."""
        self._suspects = frozenset(suspects)
        self._announce = self._suspects  # their open connections are reported at the next poll, whatever sent
        self._burst_until = time.monotonic() + BURST_SECONDS
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._reader.stop()
        with self._lock:
            for sock in [*self._diag.values(), *self._destroy.values(), *self._retired, *self._reader_diag.values()]:
                sock.close()
            self._reader_diag.clear()
            self._diag.clear()
            self._destroy.clear()
            self._retired.clear()
        self._state = "stopped"

    def status(self) -> SensorStatus:
        method = "sock_diag" if self.use_sock_diag else "psutil"
        if self.use_sock_diag:
            destroy = (f"{self.destroy_received} socket-destroy notices received, {self.destroy_lost} lost"
                       if self.destroy_reason is None else f"socket-destroy notices unavailable: {self.destroy_reason}")
            message = (f"{len(self._conns)} outbound connections open, {len(self._diag) or 1} network namespaces; "
                       f"{destroy}")
            if self._unreachable:
                message += f"; {len(self._unreachable)} network namespaces cannot be entered (their connections " \
                           "are not seen)"
        else:
            message = f"psutil: {self.reason}"
        state = "degraded" if self._unreachable and self._state == "running" else self._state
        return SensorStatus(self.name, state, method, privilege(), message, self.counters.events,
                            self.counters.rate(), self.counters.drops, 0)

    def connections(self) -> list[_Conn]:
        with self._lock:
            return list(self._conns.values())

    def followed_namespaces(self) -> set[int]:
        """Namespaces whose socket destructions the sensor hears (all it polls, when notices are on)."""
        with self._lock:
            return set(self._destroy)

    def _run(self) -> None:
        while True:
            if time.monotonic() < self._burst_until:
                wait = BURST_INTERVAL
            else:
                wait = min(self.interval, URGENT_INTERVAL) if self._urgent and self._urgent() else self.interval
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._poll()
            except Exception:
                log.exception("network poll failed")

    def _poll(self) -> None:
        self._polls += 1
        if self.use_sock_diag:
            self._sock_diag_poll()
            return
        current = self._psutil_poll()
        now = time.monotonic()
        for key, conn in current.items():
            known = self._conns.get(key)
            if known is None:
                self._conns[key] = conn
                self.counters.add()
                conn.reported_sent = conn.bytes_sent
                self._sink(self._observation("opened", conn, now))
            else:
                if known.source == "process-io" and known.process is not None:
                    io = io_counters(known.process.pid)
                    if io and known.wchar_at_open is not None:
                        known.bytes_sent = io.get("wchar", 0) - known.wchar_at_open
                self._report_progress(known, now)
        for key in [k for k in self._conns if k not in current]:
            conn = self._conns.pop(key)
            self.counters.add()
            self._sink(self._observation("closed", conn, now))

    def _report_progress(self, conn: _Conn, now: float) -> ConnectionObservation | None:
        if self._interested is None or (conn.bytes_sent or 0) < (conn.reported_sent or 0) + PROGRESS_BYTES:
            return None
        if not self._interested(conn.process):  # only trees that read a model: others cost nothing
            return None
        conn.reported_sent = conn.bytes_sent
        self.counters.add()
        observation = self._observation("progress", conn, now)
        if not self.use_sock_diag:
            self._sink(observation)
        return observation

    def _observation(self, phase: str, conn: _Conn, now: float, *, final: bool = False) -> ConnectionObservation:
        seconds = None if conn.first_seen is None else round(now - conn.first_seen, 3)
        return ConnectionObservation(phase, conn.process, conn.local, conn.local_port, conn.remote, conn.remote_port,
                                     conn.netns, conn.bytes_sent, conn.bytes_received, conn.source, seconds,
                                     conn.protocol, final, conn.owner, conn.bytes_acked, conn.peer)

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
            self._forget_namespaces(found)
        return self._namespaces

    def _forget_namespaces(self, found: dict[int, str]) -> None:
        """Stop following a namespace no process is in any more: our sockets in it would keep it alive.
        Not at once: its last sockets may still be closing when its last process has gone."""
        for netns in [n for n in self._diag if n not in found and n != self._own_ns]:
            self._ns_misses[netns] = self._ns_misses.get(netns, 0) + 1
            if self._ns_misses[netns] < NAMESPACE_MISSES:
                continue
            del self._ns_misses[netns]
            self._diag.pop(netns).close()
            with self._lock:
                destroy = self._destroy.pop(netns, None)
                if destroy is not None:
                    self._retired.append(destroy)
                for table in (self._listening, self._udp_bound, self._tx):
                    table.pop(netns, None)
            self._reader.waker.wake()
        for netns in found:
            self._ns_misses.pop(netns, None)

    def _diag_socket(self, netns: int, path: str) -> socket.socket | None:
        sock = self._diag.get(netns)
        if sock is None:
            try:
                sock = sockdiag.diag_socket() if netns == self._own_ns else sockdiag.socket_in_netns(path)
            except OSError as error:
                if error.errno in (errno.EPERM, errno.EACCES, errno.EINVAL) and netns not in self._unreachable:
                    self._unreachable[netns] = f"{path}: {error.strerror or error}"
                    self._report_unreachable()
                else:
                    log.debug("cannot enter network namespace %s: %s", path, error)  # it is gone
                return None
            self._diag[netns] = sock
            if self.destroy_reason is None:
                self._listen_for_destroy(netns, path)
        return sock

    def _report_unreachable(self) -> None:
        """Namespaces (containers) whose connections the sensor cannot see: degraded coverage, said once per
        namespace at warning level, in the health records, `status` and the app."""
        latest = list(self._unreachable.values())[-1]
        message = (f"cannot see the connections of {len(self._unreachable)} network namespaces (containers): "
                   f"cannot enter them (latest: {latest})")
        log.warning("network: %s", message)
        self._on_health(SensorHealth(self.name, "degraded", message))

    def _listen_for_destroy(self, netns: int, path: str) -> None:
        try:
            raw = sockdiag.diag_socket() if netns == self._own_ns else sockdiag.socket_in_netns(path)
            sock = sockdiag.destroy_socket(raw)
        except OSError as error:
            log.warning("no socket-destroy notices from network namespace %s: %s", path, error)
            return
        with self._lock:
            self._destroy[netns] = sock
        self._reader.waker.wake()

    def _sock_diag_poll(self) -> None:
        namespaces = self._namespace_paths()
        if self._own_ns is not None:
            namespaces = {self._own_ns: "/proc/self/ns/net", **namespaces}
        seen: dict[tuple[int, int], sockdiag.TcpSocket] = {}
        fresh: list[tuple[int, sockdiag.TcpSocket, int | None]] = []
        listening: dict[int, set[int]] = {}
        udp_bound: dict[int, set[int]] = {}
        tx: dict[int, int | None] = {}
        tainted = self._tainted_now()
        near: list[tuple[int, sockdiag.TcpSocket, list[sockdiag.TcpSocket]]] = []  # feeding a local proxy
        retry: list[tuple[int, sockdiag.TcpSocket, list[sockdiag.TcpSocket]]] = []  # feeding, its proxy unknown
        served: list[tuple[int, sockdiag.TcpSocket]] = []  # accepted from a remote host
        listeners: dict[tuple[int, int], int] = {}  # (netns, port) -> listening socket's inode
        with self._lock:
            known = set(self._conns)
            unpeered = {k for k, c in self._conns.items() if c.peer is None and _is_loopback(c.remote)}
            skip = set(self._destroyed) | set(self._ignored)
            tx_before = dict(self._tx)
        for netns, path in namespaces.items():
            sock = self._diag_socket(netns, path)
            if sock is None:
                continue
            try:
                tcp = sockdiag.dump_tcp(sock)
                udp = sockdiag.dump_udp(sock)
            except OSError:  # the namespace is gone
                self._diag.pop(netns, None)
                sock.close()
                continue
            tx[netns] = netns_tx_bytes(path, netns)
            listening[netns] = ports = {s.local_port for s in tcp if s.state == "LISTEN"}
            udp_bound[netns] = bound = {s.local_port for s in udp if s.state != _UDP_CONNECTED}
            for s in [*tcp, *udp]:
                key = (netns, s.cookie)
                if key in known:
                    seen[key] = s  # in any state, orphaned too: its counts still grow until it is destroyed
                    if key in unpeered:  # its listener had not accepted it yet when first seen
                        retry.append((netns, s, tcp))
                elif key not in skip and s.inode != 0 and self._outbound(s, ports, bound):
                    fresh.append((netns, s, tx_before.get(netns, tx[netns])))
                elif tainted and key not in skip and s.inode != 0 and self._checked.get(key) != tainted:
                    if _feeds_a_listener(s, ports):
                        near.append((netns, s, tcp))
                    elif _served(s, ports):
                        served.append((netns, s))
            listeners.update({(netns, s.local_port): s.inode for s in tcp if s.state == "LISTEN"})
        owners = socket_owners({s.inode for _, s, _ in fresh}, self._suspects) if fresh else {}
        near_owners = socket_owners({s.inode for _, s, _ in near}, tainted, only_first=True) if near else {}
        peers = self._peers_of(near, near_owners)
        late_peers = self._peers_of(retry, {s.inode: 0 for _, s, _ in retry}) if retry else {}
        owners.update(near_owners)
        if tainted:  # while a flow runs, who holds each listener: a download can end before the next poll
            self._learn_listeners(listeners)
        fed: list[tuple[int, sockdiag.TcpSocket, int | None]] = []
        for netns, s in served:  # by the processes holding its listener: one of them sends
            pid = self._server_among(netns, s.local_port, tainted)
            if pid is not None:
                owners[s.inode] = pid
                fed.append((netns, s, None))
            else:
                self._check(netns, s, tainted)
        for netns, s, _ in near:
            if s.inode in near_owners:
                fed.append((netns, s, None))
            else:
                self._check(netns, s, tainted)
        fresh = fed + fresh  # a proxy's connection out is reported after the one that feeds it: it is a relay then
        own = os.getpid()
        processes = {inode: self.cache.process_info(pid) for inode, pid in owners.items() if pid != own}
        now = time.monotonic()
        emit: list[ConnectionObservation] = []
        announce, self._announce = self._announce, frozenset()
        with self._lock:
            self._listening.update(listening)
            self._listeners = listeners
            emit.extend(self._served_late(tainted, now))
            self._udp_bound.update(udp_bound)
            self._tx.update({n: t for n, t in tx.items() if t is not None})
            for netns, s, tx_base in fresh:
                key = (netns, s.cookie)
                pid = owners.get(s.inode)
                if key in self._destroyed:  # its notice came while we looked for its owner
                    continue
                if pid == own:
                    self._remember(self._ignored, key)
                    continue
                process = processes.get(s.inode)
                is_udp = s.protocol == socket.IPPROTO_UDP
                conn = _Conn(key, process, s.local, s.local_port, s.remote, s.remote_port, netns, now,
                             protocol="udp" if is_udp else "tcp", tx_base=tx_base if is_udp else None,
                             owner="socket-inode" if process is not None else "unknown: the socket had no "
                                                                              "process when it was first seen",
                             peer=peers.get(key))
                self._update(conn, s, tx.get(netns))
                conn.reported_sent = conn.bytes_sent
                self._conns[key] = conn
                seen[key] = s
                self.counters.add()
                emit.append(self._observation("opened", conn, now))
            for key, conn in list(self._conns.items()):
                s_now = seen.get(key)
                if s_now is not None:
                    conn.missing = 0
                    self._update(conn, s_now, tx.get(key[0]))
                    if key in late_peers:
                        conn.peer = late_peers[key]
                        conn.reported_sent = conn.bytes_sent
                        emit.append(self._observation("progress", conn, now))
                        continue
                    progress = self._report_progress(conn, now)
                    if progress is not None:
                        emit.append(progress)
                    elif conn.process is not None and conn.process.pid in announce:
                        conn.reported_sent = conn.bytes_sent  # what it had sent when its process joined a flow
                        self.counters.add()
                        emit.append(self._observation("progress", conn, now))
                else:
                    conn.missing += 1
                    # with destroy notices its final counts are on their way; without (or if the notice
                    # was lost, or its namespace is no longer dumped) it is closed with what the last poll saw
                    if key[0] not in tx or key[0] not in self._destroy or conn.missing >= MISSING_POLLS:
                        del self._conns[key]
                        self._remember(self._destroyed, key)
                        self.counters.add()
                        emit.append(self._observation("closed", conn, now))
        for observation in emit:
            self._sink(observation)

    @staticmethod
    def _outbound(s: sockdiag.TcpSocket, listening: set[int], udp_bound: set[int], *, destroyed: bool = False) -> bool:
        """A connection this host opened to a non-loopback peer. A destroyed TCP socket is in state CLOSE
        whatever it was, so then only its port tells (the listening ports of the last poll)."""
        if _is_loopback(s.remote) or s.remote_port == 0:
            return False
        if s.protocol == socket.IPPROTO_UDP:
            return s.state == _UDP_CONNECTED and s.local_port not in udp_bound
        return (destroyed or s.state in _OUTBOUND_STATES) and s.state != "LISTEN" and s.local_port not in listening

    def _listening_now(self, netns: int, path: str | None, known: set[int]) -> set[int]:
        """The namespace's listening ports asked of the kernel now, at most every LISTEN_REFRESH_SECONDS (a
        socket seen only at its destruction is outbound only if its port is not one: a server started since
        the last poll accepted it). The reader thread's own sock_diag socket: the poll's is the poll's."""
        now = time.monotonic()
        when, ports = self._listen_cache.get(netns, (-1.0, known))
        if now - when < LISTEN_REFRESH_SECONDS or path is None:
            return ports | known
        try:
            sock = self._reader_diag.get(netns)
            if sock is None:
                sock = sockdiag.diag_socket() if netns == self._own_ns else sockdiag.socket_in_netns(path)
                self._reader_diag[netns] = sock
            ports = sockdiag.listening_ports(sock)
        except OSError:
            ports = set()
        self._listen_cache[netns] = (now, ports)
        return ports | known

    def _served_late(self, tainted: frozenset[int], now: float) -> list[ConnectionObservation]:
        """Connections a listener accepted that were gone before a poll saw them (a fast download): each
        reported, closed with its final counts, when a tainted process holds its listener, within
        SERVED_LATE_SECONDS of its end (its server may join a flow only after the notice came). Under the lock."""
        emit: list[ConnectionObservation] = []
        if not self._unplaced:
            return emit
        if tainted:
            self._learn_listeners({(n, s.local_port): self._listeners.get((n, s.local_port), 0)
                                   for _, n, s in self._unplaced})
        kept: deque[tuple[float, int, sockdiag.TcpSocket]] = deque(maxlen=self._unplaced.maxlen)
        for ended, netns, s in self._unplaced:
            server = self._server_among(netns, s.local_port, tainted) if tainted else None
            key = (netns, s.cookie)
            if server is not None and key not in self._destroyed:
                self._remember(self._destroyed, key)
                conn = _Conn(key, self.cache.process_info(server), s.local, s.local_port, s.remote, s.remote_port,
                             netns, None, owner="listener")
                self._update(conn, s, None)
                self.counters.add()
                emit.append(self._observation("closed", conn, now, final=True))
            elif server is None and now - ended < SERVED_LATE_SECONDS:
                kept.append((ended, netns, s))
        self._unplaced = kept
        return emit

    def _tainted_now(self) -> frozenset[int]:
        return frozenset(self._tainted()) if self._tainted is not None else frozenset()

    def _check(self, netns: int, s: sockdiag.TcpSocket, tainted: frozenset[int]) -> None:
        """No tainted process owns it: looked at again only when the tainted processes change."""
        self._checked[(netns, s.cookie)] = tainted
        if len(self._checked) > RECENT_DESTROYED:
            self._checked.popitem(last=False)

    def _learn_listeners(self, wanted: dict[tuple[int, int], int]) -> None:
        """The processes holding each listening socket (a server and its forked workers), looked for once per
        listener (a new socket on the port is looked for again)."""
        stale = {inode: key for key, inode in wanted.items() if inode and self._servers.get(key, (0,))[0] != inode}
        if not stale:
            return
        found = socket_holders(set(stale))
        for inode, key in stale.items():
            self._servers[key] = (inode, frozenset(found.get(inode, ())))
        while len(self._servers) > RECENT_DESTROYED:
            self._servers.pop(next(iter(self._servers)))

    def _server_among(self, netns: int, port: int, tainted: frozenset[int]) -> int | None:
        holders = self._servers.get((netns, port), (0, frozenset()))[1]
        return next((pid for pid in sorted(holders) if pid in tainted), None)

    def _peers_of(self, near: list[tuple[int, sockdiag.TcpSocket, list[sockdiag.TcpSocket]]],
                  owners: dict[int, int]) -> dict[tuple[int, int], ProcessInfo]:
        """For each loopback connection of a tainted process: the process of the socket its listener
        accepted for it (the other end: addresses and ports crossed)."""
        ends: dict[int, tuple[int, int]] = {}  # the accepted end's inode -> the feeding connection's key
        for netns, s, tcp in near:
            if s.inode not in owners or not _is_loopback(s.remote):
                continue
            for other in tcp:
                if (other.local, other.local_port, other.remote, other.remote_port) == \
                        (s.remote, s.remote_port, s.local, s.local_port) and other.inode:
                    ends[other.inode] = (netns, s.cookie)
                    break
        if not ends:
            return {}
        found = socket_owners(set(ends))
        return {ends[inode]: self.cache.process_info(pid) for inode, pid in found.items()}

    def _update(self, conn: _Conn, s: sockdiag.TcpSocket, tx: int | None) -> None:
        if s.protocol == socket.IPPROTO_UDP:
            if tx is not None and conn.tx_base is not None:
                conn.bytes_sent, conn.source = max(tx - conn.tx_base, 0), NETNS_BOUND
        elif s.bytes_sent is not None:  # a TIME_WAIT entry has no tcp_info: keep the last counts
            conn.bytes_sent, conn.bytes_acked, conn.bytes_received = s.bytes_sent, s.bytes_acked, s.bytes_received
            conn.source = "tcp_info"

    @staticmethod
    def _remember(table: OrderedDict[tuple[int, int], None], key: tuple[int, int]) -> None:
        table[key] = None
        if len(table) > RECENT_DESTROYED:
            table.popitem(last=False)

    # ------------------------------------------------------------------ destroy notices

    def _read_destroyed(self) -> None:
        """The reader thread: blocked in poll() on every followed namespace's destroy socket."""
        read_notices(self._reader, self._lock, self._destroy, self._retired, self._drain)

    def _drain(self, netns: int, sock: socket.socket) -> None:
        for _ in range(256):  # bounded: the other namespaces get their turn
            try:
                data = sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno == errno.ENOBUFS:  # the kernel dropped notices: their sockets close by poll
                    self.destroy_lost += 1
                    self.counters.drop()
                    continue
                log.warning("socket-destroy notices from namespace %s failed: %s", netns, error)
                return
            try:
                self._on_destroyed(netns, sockdiag.destroyed(data))
            except Exception:
                log.exception("socket-destroy notice not handled")

    def _on_destroyed(self, netns: int, sockets: list[sockdiag.TcpSocket]) -> None:
        now = time.monotonic()
        emit: list[ConnectionObservation] = []
        with self._lock:
            path = self._namespaces.get(netns) or ("/proc/self/ns/net" if netns == self._own_ns else None)
            for s in sockets:
                self.destroy_received += 1
                key = (netns, s.cookie)
                conn = self._conns.pop(key, None)
                if conn is None:
                    if key in self._destroyed or key in self._ignored or s.state == "LISTEN":
                        continue
                    listening = self._listening.get(netns, set())
                    if s.protocol == socket.IPPROTO_TCP and s.local_port not in listening:
                        listening = self._listening_now(netns, path, listening)  # a server started since
                    if _served(s, listening):  # served between two polls: whose, once its server is known
                        self._unplaced.append((now, netns, s))
                        continue
                    if not self._outbound(s, listening, self._udp_bound.get(netns, set()), destroyed=True):
                        continue
                    is_udp = s.protocol == socket.IPPROTO_UDP
                    conn = _Conn(key, None, s.local, s.local_port, s.remote, s.remote_port, netns, None,
                                 protocol="udp" if is_udp else "tcp", owner=UNKNOWN_OWNER,
                                 tx_base=self._tx.get(netns) if is_udp else None)
                self._remember(self._destroyed, key)
                tx = netns_tx_bytes(path, netns) if conn.protocol == "udp" and path else None
                self._update(conn, s, tx)
                self.counters.add()
                emit.append(self._observation("closed", conn, now, final=True))
        for observation in emit:
            self._sink(observation)

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
