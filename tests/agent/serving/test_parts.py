"""The serving sensor's parts on their own: reach, the loopback probe, the per-peer ledger, peer volumes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from weightwarden.agent.detect.serving_volume import PeerVolume
from weightwarden.agent.sensors.sockdiag import TcpSocket
from weightwarden.agent.serving.ledger import PeerLedger
from weightwarden.agent.serving.probe import probe
from weightwarden.agent.serving.reach import reach

INTERFACES = {"lo": ["127.0.0.1", "::1"], "eth0": ["192.168.1.20"], "docker0": ["172.17.0.1"]}


@pytest.mark.parametrize(("address", "host", "expected"), [
    ("127.0.0.1", True, "loopback"), ("::1", True, "loopback"), ("0.0.0.0", True, "all-interfaces"),
    ("::", True, "all-interfaces"), ("192.168.1.20", True, "lan"), ("172.17.0.1", True, "container-bridge"),
    ("0.0.0.0", False, "container-bridge"), ("127.0.0.1", False, "loopback")])
def test_reach(address: str, host: bool, expected: str) -> None:
    assert reach(address, host_namespace=host, interfaces=INTERFACES) == expected


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A listener that accepts and says nothing (not HTTP)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def run() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=run)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for sock in [*accepted, server]:
        sock.close()


def test_a_listener_that_does_not_speak_http_is_not_known(silent_listener: int) -> None:
    found = probe(silent_listener, socket.AF_INET, None)
    assert (found.protocol, found.authenticated) == (None, None)


def _conn(cookie: int, received: int, sent: int, remote: str = "10.0.0.9") -> TcpSocket:
    return TcpSocket(socket.AF_INET, "ESTABLISHED", "10.0.0.1", 8000, remote, 40000 + cookie, 1000, 0, sent, sent,
                     received, cookie)


def test_the_ledger_counts_each_connection_once_with_its_final_counts() -> None:
    ledger = PeerLedger()
    ledger.seen(1, "s", _conn(1, 100, 1000))
    ledger.seen(1, "s", _conn(1, 150, 1500))  # grown since
    ledger.closed(1, "s", _conn(1, 200, 2000))  # the notice: final
    ledger.seen(1, "s", _conn(1, 200, 2000))  # a late dump of the same socket: not a new connection
    ledger.closed(1, "s", _conn(2, 50, 500))  # short: only its notice
    ledger.seen(1, "s", _conn(3, 10, 100))  # still open
    totals = ledger.current("s", "10.0.0.9")
    assert (totals.connections, totals.open, totals.bytes_received, totals.bytes_sent) == (3, 1, 260, 2600)
    assert ledger.changed() == {("s", "10.0.0.9")} and ledger.changed() == set()
    ledger.vanished(1, set())  # notices lost: closed at its last counts
    assert ledger.current("s", "10.0.0.9").open == 0 and ledger.current("s", "10.0.0.9").bytes_sent == 2600


def test_peer_volume_in_a_window() -> None:
    volume = PeerVolume()
    for minute in range(0, 180):  # 1 MB and 10 connections a minute for three hours
        volume.add(minute * 60.0, minute * 1_000_000, minute * 10)
    now = 179 * 60.0
    assert volume.within(now, 3600) == (60_000_000, 600)
    assert volume.within(now, 60) == (1_000_000, 10)
    assert volume.within(now, 86400) == (179_000_000, 1790)
    assert len(volume.coarse) <= 181 and len(volume.fine) <= 12


def test_the_engine_forgets_peers_quiet_for_a_day() -> None:
    from weightwarden.agent.detect.engine import DetectionEngine
    from weightwarden.agent.detect.replay import event_from
    from weightwarden.agent.detect.rules import load_rules
    from weightwarden.agent.events import Event

    engine = DetectionEngine(load_rules())
    server = {"pid": 5, "name": "ollama", "session": 5}

    def traffic(at: float, peer: str) -> Event:
        made = event_from({"at": at, "action": "serving-traffic", "peer": peer, "connections": 1, "bytes_sent": 10,
                           "process": server})
        assert isinstance(made, Event)
        return made

    engine.process(traffic(0, "10.0.0.1"))
    for n in range(1100):  # the engine prunes every 1,024 events; a day and more later, another peer asks
        engine.process(traffic(90_000 + n, "10.0.0.2"))
    (tree,) = [t for t in engine._trees.values() if t.serving]
    assert [key.split(">")[1] for key in tree.serving] == ["10.0.0.2"]


def test_the_ledger_forgets_peers_quiet_for_a_day_but_not_open_ones() -> None:
    ledger = PeerLedger()
    ledger.closed(1, "s", _conn(1, 10, 100, remote="10.0.0.7"))  # done
    ledger.seen(1, "s", _conn(2, 10, 100, remote="10.0.0.8"))  # still open (a long stream)
    ledger.changed(now=0.0)
    assert ledger.forget_quiet(now=3600.0) == 0
    assert ledger.forget_quiet(now=90_000.0) == 1
    assert [peer for peer, _ in ledger.peers("s")] == ["10.0.0.8"]
