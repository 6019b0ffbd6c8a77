"""The serving sensor: model servers on this machine and what each remote peer asks of them.

Every `interval` seconds, in every network namespace: the TCP listeners (listeners.py); a listener whose
process has a protected model loaded (held.py) is a server: its reach (reach.py) and, once, a loopback
probe of its protocol and authentication (probe.py) -> `ServingStarted`; a server's listener gone ->
`ServingStopped`. For the namespaces that hold a server, one dump of their TCP sockets gives the accepted
connections' counters, and a reader thread receives the kernel's destroy notices there (final counts of
every connection, however short) -> the ledger (ledger.py) -> `PeerTraffic` per (server, peer) when its
counts changed, at most once per `report_seconds`. It decides nothing: rules judge the events.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.sensors import sockdiag
from weightwarden.agent.sensors.base import Counters, SensorStatus, SensorThread, privilege
from weightwarden.agent.sensors.destroy_notices import read_notices
from weightwarden.agent.sensors.files import SensorHealth
from weightwarden.agent.sensors.network import socket_holders
from weightwarden.agent.serving import reach as reach_of
from weightwarden.agent.serving.ledger import PeerLedger
from weightwarden.agent.serving.listeners import Listener, accepts, listening, namespaces, own_namespace
from weightwarden.agent.serving.observations import PeerTraffic, ServedModel, Server, ServingStarted, ServingStopped
from weightwarden.agent.serving.probe import ProbeResult, probe
from weightwarden.agent.serving.section import PeerRow, row_of

log = logging.getLogger(__name__)

RECHECK_SECONDS = 10.0  # a listener without a protected model is looked at again (a model loaded later)
NAMESPACE_SECONDS = 5.0
PRUNE_SECONDS = 60.0  # peers quiet for a day are forgotten (ledger.py), looked for once a minute
ACCEPTED_STATES = frozenset({"ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT1", "FIN_WAIT2", "LAST_ACK", "CLOSING"})
# The same states as sock_diag's bitmask: the kernel leaves out the rest, TIME_WAIT above all (a server
# answering 1,000 short connections a second keeps some 60,000 of them, none with counters worth reading).
ACCEPTED_MASK = sum(1 << number for number, name in sockdiag.TCP_STATES.items() if name in ACCEPTED_STATES)


class ServingSensor:
    name = "serving"

    def __init__(self, emit: Callable[[object], None], on_health: Callable[[SensorHealth], None], *,
                 loaded: Callable[[int], tuple[ServedModel, ...]], who: Callable[[int], ProcessInfo | None],
                 interval: float = 1.0, report_seconds: float = 2.0,
                 prober: Callable[[int, int, str | None], ProbeResult] = probe) -> None:
        """`loaded`: the protected models a pid has loaded; `who`: a pid's process."""
        self._emit, self._on_health = emit, on_health
        self._loaded, self._who, self._probe = loaded, who, prober
        self.interval, self.report_seconds = interval, report_seconds
        self.counters = Counters()
        self.ledger = PeerLedger()
        self._lock = threading.Lock()  # the ledger and the servers: the poller and the notice reader
        self._servers: dict[tuple[int, int], Server] = {}  # (netns, listener inode) -> server
        self._idle: dict[tuple[int, int], float] = {}  # listeners without a protected model: when looked at
        self._diag: dict[int, socket.socket] = {}
        self._destroy: dict[int, socket.socket] = {}
        self._retired: list[socket.socket] = []  # destroy sockets the reader closes once it stopped polling them
        self._namespaces: dict[int, str] = {}
        self._namespaces_at = -1e9
        self._own_ns = own_namespace()
        self._reported: dict[tuple[str, str], float] = {}
        self._pending: set[tuple[str, str]] = set()
        self._pruned = time.monotonic()
        self._poller = SensorThread("ww-serving", self._run)
        self._reader = SensorThread("ww-serving-destroy", self._read_destroyed)
        self._state = "stopped"
        self.notices = self.lost = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._state = "running"
        self._poller.start()
        self._reader.start()

    def stop(self) -> None:
        self._poller.stop()
        self._reader.stop()
        with self._lock:
            for sock in [*self._diag.values(), *self._destroy.values(), *self._retired]:
                sock.close()
            self._diag.clear()
            self._destroy.clear()
            self._retired.clear()
        self._state = "stopped"

    def status(self) -> SensorStatus:
        with self._lock:
            servers = len(self._servers)
        return SensorStatus(self.name, self._state, "sock_diag+loopback-probe", privilege(),
                            f"{servers} model servers; {self.notices} connection closes counted",
                            self.counters.events, self.counters.rate(), self.counters.drops + self.lost, 0)

    def snapshot(self) -> dict[str, Any]:
        """The "serving" section of the status snapshot (`weightwarden status`, `models`, the app)."""
        with self._lock:
            servers = list(self._servers.values())
            rows = []
            for server in sorted(servers, key=lambda s: s.key):
                peers = [PeerRow(peer, t.connections, t.open, t.bytes_received, t.bytes_sent)
                         for peer, t in self.ledger.peers(server.key)]
                rows.append(row_of(server, peers))
        return {"servers": [row.to_dict() for row in rows]}

    # ------------------------------------------------------------------ polling

    def _run(self) -> None:
        while not self._poller.stopping.is_set():
            started = time.monotonic()
            try:
                self._poll(started)
            except Exception:
                log.exception("serving poll failed")
                self.counters.drop()
            self._poller.stopping.wait(max(self.interval - (time.monotonic() - started), 0.05))

    def _poll(self, now: float) -> None:
        if now - self._namespaces_at >= NAMESPACE_SECONDS:
            self._namespaces, self._namespaces_at = namespaces(), now
            for gone in [n for n in self._diag if n not in self._namespaces]:
                self._diag.pop(gone).close()
        seen: set[tuple[int, int]] = set()
        candidates: list[tuple[Listener, str]] = []
        for netns, path in self._namespaces.items():
            sock = self._diag_socket(netns, path)
            if sock is None:
                continue
            try:
                found = listening(sock, netns)
            except OSError:
                continue
            for listener in found:
                key = (netns, listener.inode)
                seen.add(key)
                if key not in self._servers and now - self._idle.get(key, -1e9) >= RECHECK_SECONDS:
                    candidates.append((listener, path))
        if candidates:  # one look through /proc/*/fd for all of them
            holders = socket_holders({listener.inode for listener, _ in candidates})
            for listener, path in candidates:
                self._consider(listener, path, sorted(holders.get(listener.inode, set())), now)
        for netns in self._namespaces:
            sock = self._diag.get(netns)
            if sock is not None and any(key[0] == netns for key in self._servers):
                self._count(netns, sock)
        for key in [k for k in self._servers if k not in seen]:
            with self._lock:
                server = self._servers.pop(key)
                final: list[PeerTraffic] = []
                if not any(s.key == server.key for s in self._servers.values()):
                    # what its peers asked since their last report is not lost with the server
                    self._pending |= self.ledger.changed(now)
                    for pair in [p for p in self._pending if p[0] == server.key]:
                        self._pending.discard(pair)
                        final.append(self._traffic(server, pair))
                    self.ledger.forget(server.key)
                    self._reported = {p: t for p, t in self._reported.items() if p[0] != server.key}
            for observation in [*final, ServingStopped(server)]:
                self.counters.add()
                self._emit(observation)
        self._idle = {k: t for k, t in self._idle.items() if k in seen}
        self._unfollow()
        self._report(now)

    def _diag_socket(self, netns: int, path: str) -> socket.socket | None:
        sock = self._diag.get(netns)
        if sock is None:
            try:
                sock = sockdiag.diag_socket() if netns == self._own_ns else sockdiag.socket_in_netns(path)
            except OSError:
                return None  # gone, or not ours to enter (the network sensor reports that)
            self._diag[netns] = sock
        return sock

    def _consider(self, listener: Listener, path: str, pids: list[int], now: float) -> None:
        key = (listener.netns, listener.inode)
        self._idle[key] = now
        for pid in pids:
            models = self._loaded(pid)
            if not models:
                continue
            own = listener.netns == self._own_ns
            where = reach_of.reach(listener.address, host_namespace=own,
                                   interfaces=reach_of.host_interfaces() if own else {})
            found = self._probe(listener.port, listener.family, None if own else path)
            server = Server(listener.netns, listener.address, listener.port, where, pid, self._who(pid), models,
                            found.protocol, found.authenticated, found.detail)
            with self._lock:
                self._servers[key] = server
            self._idle.pop(key, None)
            self.counters.add()
            self._emit(ServingStarted(server))
            self._follow(listener.netns, path)
            return

    def _count(self, netns: int, sock: socket.socket) -> None:
        try:
            sockets = sockdiag.dump(sock, socket.IPPROTO_TCP, ACCEPTED_MASK)
        except OSError:
            return
        with self._lock:
            servers = [s for (n, _), s in self._servers.items() if n == netns]
            cookies: set[int] = set()
            for s in sockets:
                if s.state not in ACCEPTED_STATES or not s.remote_port:
                    continue
                server = next((v for v in servers if accepts(_listener(v), s.local, s.local_port)), None)
                if server is not None:
                    cookies.add(s.cookie)
                    self.ledger.seen(netns, server.key, s)
            self.ledger.vanished(netns, cookies)

    def _report(self, now: float) -> None:
        with self._lock:
            self._pending |= self.ledger.changed(now)
            if now - self._pruned >= PRUNE_SECONDS:
                self._pruned = now
                self.ledger.forget_quiet(now)
                live = {(s.key, p) for s in self._servers.values() for p, _ in self.ledger.peers(s.key)}
                self._reported = {p: t for p, t in self._reported.items() if p in live}
            by_key = {s.key: s for s in self._servers.values()}
            due = [p for p in self._pending if now - self._reported.get(p, -1e9) >= self.report_seconds]
            out = []
            for pair in due:
                self._pending.discard(pair)
                server = by_key.get(pair[0])
                if server is None:
                    continue
                self._reported[pair] = now
                out.append(self._traffic(server, pair))
        for traffic in out:
            self.counters.add()
            self._emit(traffic)

    def _traffic(self, server: Server, pair: tuple[str, str]) -> PeerTraffic:
        totals = self.ledger.current(*pair)
        return PeerTraffic(server, pair[1], totals.connections, totals.open, totals.bytes_received, totals.bytes_sent)

    # ------------------------------------------------------------------ destroy notices

    def _follow(self, netns: int, path: str) -> None:
        if netns in self._destroy:
            return
        try:
            raw = sockdiag.diag_socket() if netns == self._own_ns else sockdiag.socket_in_netns(path)
            sock = sockdiag.destroy_socket(raw)
        except OSError as error:
            self._on_health(SensorHealth(self.name, "degraded", f"no connection-close notices from network "
                                         f"namespace {netns}: {error.strerror or error}; short connections to "
                                         "its model servers are counted only when a poll sees them"))
            return
        with self._lock:
            self._destroy[netns] = sock
        self._reader.waker.wake()

    def _unfollow(self) -> None:
        """Stop the destroy notices of namespaces that hold no server any more (the kernel builds each notice
        only while someone listens); the reader thread closes their sockets once it no longer polls them."""
        with self._lock:
            serving = {netns for netns, _ in self._servers}
            gone = [n for n in self._destroy if n not in serving]
            for netns in gone:
                self._retired.append(self._destroy.pop(netns))
        if gone:
            self._reader.waker.wake()

    def followed_namespaces(self) -> set[int]:
        """The namespaces whose connection-close notices the sensor receives (those holding a server)."""
        with self._lock:
            return set(self._destroy)

    def _read_destroyed(self) -> None:
        read_notices(self._reader, self._lock, self._destroy, self._retired, self._drain)

    def _drain(self, netns: int, sock: socket.socket) -> None:
        for _ in range(256):
            try:
                data = sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    self.lost += 1  # the next dumps still count the open ones; the closed are lost
                    continue
                return
            closed = [s for s in sockdiag.destroyed(data)
                      if s.protocol == socket.IPPROTO_TCP and s.state != "LISTEN" and s.remote_port]
            if not closed:
                continue
            with self._lock:
                servers = [s for (n, _), s in self._servers.items() if n == netns]
                for s in closed:
                    server = next((v for v in servers if accepts(_listener(v), s.local, s.local_port)), None)
                    if server is not None:
                        self.notices += 1
                        self.ledger.closed(netns, server.key, s)


def _listener(server: Server) -> Listener:
    return Listener(server.netns, 0, server.address, server.port, 0)
