"""The network sensor and local listeners, on 127.0.0.1 with real processes: a connection of a process the
agent follows (a flow that read a model) to a local listener is reported with the listener's process as its
peer (a local proxy may carry the bytes further); the same connection of a process nobody follows is not
egress and is not reported."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator

import pytest

from tests.agent.sensors.conftest import PYTHON, Collected, wait_for
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.network import ConnectionObservation, NetworkSensor, sock_diag_unavailable

pytestmark = pytest.mark.root

# Listens on a free loopback port (printed), accepts one connection and reads it until told to stop.
LISTENER = textwrap.dedent("""
    import socket, sys
    server = socket.socket()
    server.bind(("127.0.0.1", 0)); server.listen()
    print(server.getsockname()[1], flush=True)
    conn, _ = server.accept()
    while conn.recv(1 << 16):
        pass
    sys.stdin.readline()
""")

# Connects to the port, sends, and holds the connection until told to stop.
CLIENT = textwrap.dedent("""
    import socket, sys
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    sock.sendall(b"m" * 200_000)
    print("sent", flush=True)
    sys.stdin.readline()
""")


def start(code: str, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PYTHON, "-c", code, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def stop(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def listener() -> Iterator[tuple[subprocess.Popen[str], int]]:
    if (why := sock_diag_unavailable()) is not None:
        pytest.skip(why)
    process = start(LISTENER)
    assert process.stdout is not None
    try:
        yield process, int(process.stdout.readline())
    finally:
        stop(process)


def observed(collected: Collected, pid: int) -> list[ConnectionObservation]:
    return [o for o in list(collected.items) if isinstance(o, ConnectionObservation)
            and o.process is not None and o.process.pid == pid]


@pytest.mark.parametrize("followed", [True, False], ids=["followed", "not-followed"])
def test_a_followed_processs_connection_to_a_local_listener_names_the_listener(
        listener: tuple[subprocess.Popen[str], int], cache: ProcessCache, followed: bool) -> None:
    server, port = listener
    client = start(CLIENT, str(port))
    tainted: set[int] = set()
    collected = Collected()
    sensor = NetworkSensor(cache, collected.add, collected.add_health, interval=0.05, tainted=lambda: tainted)
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "sent"
        if followed:
            tainted.add(client.pid)
        sensor.start()
        if followed:
            (seen, *_) = wait_for(lambda: observed(collected, client.pid), timeout=10,
                                  what="the followed client's loopback connection")
            assert seen.peer is not None and seen.peer.pid == server.pid, seen
            assert seen.remote == "127.0.0.1" and seen.remote_port == port
        else:
            polls = sensor._polls
            wait_for(lambda: sensor._polls >= polls + 5, timeout=10, what="five polls")
            assert observed(collected, client.pid) == []
    finally:
        sensor.stop()
        stop(client)
