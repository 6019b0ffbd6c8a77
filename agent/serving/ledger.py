"""Per server and remote peer: connections accepted and bytes each way, from the kernel's socket counters.

An open connection counts with its latest dump's tcp_info (bytes_received, bytes_sent: payload each way);
a destroyed one with its final counts from the kernel's destroy notice (exact, however short it lived,
even when no dump ever saw it). Connections are keyed by (namespace, socket cookie), so a notice and a
dump of the same socket never count twice.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from weightwarden.agent.sensors.sockdiag import TcpSocket

RECENTLY_CLOSED = 65536  # cookies remembered after their notice (a late dump must not reopen them)
QUIET_SECONDS = 86400.0  # a peer with nothing open and no change for a day is forgotten (the rules keep a day)


@dataclass
class Totals:
    connections: int = 0
    open: int = 0
    bytes_received: int = 0  # of closed connections, plus open ones at their latest counts (see `current`)
    bytes_sent: int = 0


@dataclass
class _Open:
    pair: tuple[str, str]
    received: int
    sent: int


class PeerLedger:
    def __init__(self) -> None:
        self._closed: dict[tuple[str, str], Totals] = {}  # (server key, peer) -> closed connections' totals
        self._open: dict[tuple[int, int], _Open] = {}  # (netns, cookie) -> open connection
        self._gone: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._changed: set[tuple[str, str]] = set()
        self._touched: dict[tuple[str, str], float] = {}  # (server, peer) -> when its counts last changed

    def seen(self, netns: int, server: str, sock: TcpSocket) -> None:
        """A dump saw this accepted connection of `server` open."""
        key = (netns, sock.cookie)
        if key in self._gone:
            return
        pair = (server, sock.remote)
        conn = self._open.get(key)
        received, sent = sock.bytes_received or 0, sock.bytes_sent or 0
        if conn is None:
            self._open[key] = _Open(pair, received, sent)
            self._closed.setdefault(pair, Totals()).connections += 1
            self._changed.add(pair)
        elif (conn.received, conn.sent) != (received, sent):
            conn.received, conn.sent = received, sent
            self._changed.add(pair)

    def closed(self, netns: int, server: str, sock: TcpSocket) -> None:
        """The kernel's destroy notice of an accepted connection of `server`: its final counts."""
        key = (netns, sock.cookie)
        if key in self._gone:
            return
        self._gone[key] = None
        if len(self._gone) > RECENTLY_CLOSED:
            self._gone.popitem(last=False)
        conn = self._open.pop(key, None)
        pair = conn.pair if conn is not None else (server, sock.remote)
        totals = self._closed.setdefault(pair, Totals())
        if conn is None:
            totals.connections += 1
        totals.bytes_received += max(sock.bytes_received or 0, conn.received if conn else 0)
        totals.bytes_sent += max(sock.bytes_sent or 0, conn.sent if conn else 0)
        self._changed.add(pair)

    def vanished(self, netns: int, cookies: set[int]) -> None:
        """Open connections of `netns` a full dump no longer shows and no notice closed (notices lost):
        closed at their last counts."""
        for key in [k for k in self._open if k[0] == netns and k[1] not in cookies]:
            conn = self._open.pop(key)
            totals = self._closed.setdefault(conn.pair, Totals())
            totals.bytes_received += conn.received
            totals.bytes_sent += conn.sent
            self._changed.add(conn.pair)

    def current(self, server: str, peer: str) -> Totals:
        base = self._closed.get((server, peer), Totals())
        opened = [c for c in self._open.values() if c.pair == (server, peer)]
        return Totals(base.connections, len(opened), base.bytes_received + sum(c.received for c in opened),
                      base.bytes_sent + sum(c.sent for c in opened))

    def changed(self, now: float | None = None) -> set[tuple[str, str]]:
        """(server key, peer) pairs whose counts changed since the last call."""
        changed, self._changed = self._changed, set()
        when = time.monotonic() if now is None else now
        for pair in changed:
            self._touched[pair] = when
        return changed

    def forget_quiet(self, now: float, quiet: float = QUIET_SECONDS) -> int:
        """Forget the peers with nothing open whose counts have not changed for `quiet` seconds."""
        busy = {c.pair for c in self._open.values()}
        gone = [p for p, t in self._touched.items() if now - t > quiet and p not in busy and p not in self._changed]
        for pair in gone:
            del self._touched[pair]
            self._closed.pop(pair, None)
        return len(gone)

    def forget(self, server: str) -> None:
        for pair in [p for p in self._closed if p[0] == server]:
            del self._closed[pair]
            self._touched.pop(pair, None)
        for key in [k for k, c in self._open.items() if c.pair[0] == server]:
            del self._open[key]

    def peers(self, server: str) -> list[tuple[str, Totals]]:
        peers = {p for s, p in self._closed if s == server} | {c.pair[1] for c in self._open.values()
                                                              if c.pair[0] == server}
        return [(peer, self.current(server, peer)) for peer in sorted(peers)]
