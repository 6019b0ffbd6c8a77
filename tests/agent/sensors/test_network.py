"""The network sensor on real uploads between two network namespaces the test creates (veth pair, 10.x
addresses that exist only inside them): the uploader is named, with its parent chain, the destination and
the bytes the kernel counted for the socket; a connection shorter than a poll is still recorded with its
final count (from the kernel's destroy notice); a long upload's last record carries every byte; UDP
datagrams are recorded with a bound and its source named. The namespaces are removed even on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.agent.sensors.conftest import PYTHON, Collected, wait_for
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.network import (
    NETNS_BOUND,
    UNKNOWN_OWNER,
    ConnectionObservation,
    NetworkSensor,
    _is_loopback,
    destroy_notices_unavailable,
    sock_diag_unavailable,
)

pytestmark = pytest.mark.root

UPLOAD_BYTES = 3 * 1024 * 1024
SHORT_BYTES = 20 * 1000 * 1000
LONG_CHUNK, LONG_CHUNKS = 512 * 1024, 16
DATAGRAM, DATAGRAMS = 1000, 200


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = uuid.uuid4().hex[:6]
    client, server = f"ww-c-{tag}", f"ww-s-{tag}"
    made: list[str] = []
    try:
        for name in (client, server):
            ip("netns", "add", name)
            made.append(name)
        ip("link", "add", f"wwc{tag}", "netns", client, "type", "veth", "peer", "name", f"wws{tag}", "netns", server)
        ip("-n", client, "addr", "add", "10.231.7.1/24", "dev", f"wwc{tag}")
        ip("-n", server, "addr", "add", "10.231.7.2/24", "dev", f"wws{tag}")
        for name, dev in ((client, f"wwc{tag}"), (server, f"wws{tag}")):
            ip("-n", name, "link", "set", dev, "up")
            ip("-n", name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as error:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        pytest.skip(f"cannot create network namespaces here: {error.stderr.decode().strip()}")
    try:
        yield client, server
    finally:
        for name in made:  # deleting a namespace also deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


LISTENER = textwrap.dedent("""
    import socket, sys
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("10.231.7.2", 9099)); server.listen()
    print("listening", flush=True)
    conn, _ = server.accept()
    total = 0
    while chunk := conn.recv(1 << 16):
        total += len(chunk)
    print(total, flush=True)
""")

UPLOADER = textwrap.dedent("""
    import socket, sys
    sock = socket.create_connection(("10.231.7.2", 9099), timeout=10)
    sock.sendall(b"w" * int(sys.argv[1]))
    print("sent", flush=True)
    sys.stdin.readline()
    sock.close()
    print("closed", flush=True)
    sys.stdin.readline()
""")


def connections(collected: Collected, phase: str, pid: int) -> list[ConnectionObservation]:
    return [o for o in list(collected.items) if isinstance(o, ConnectionObservation) and o.phase == phase
            and o.process is not None and o.process.pid == pid]


def test_upload_between_namespaces_is_attributed_with_bytes(namespaces: tuple[str, str], cache: ProcessCache,
                                                            collected: Collected) -> None:
    why = sock_diag_unavailable()
    if why:
        pytest.skip(f"sock_diag unavailable: {why}")
    client, server = namespaces
    sensor = NetworkSensor(cache, collected.add, collected.add_health, interval=0.1)
    sensor.start()
    listener = subprocess.Popen(["ip", "netns", "exec", server, PYTHON, "-c", LISTENER], stdout=subprocess.PIPE,
                                text=True)
    uploader = None
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
        uploader = subprocess.Popen(["ip", "netns", "exec", client, PYTHON, "-c", UPLOADER, str(UPLOAD_BYTES)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert uploader.stdout is not None and uploader.stdin is not None
        assert uploader.stdout.readline().strip() == "sent"
        (opened,) = wait_for(lambda: connections(collected, "opened", uploader.pid), timeout=15,
                             what="the outbound connection from the client namespace")
        assert (opened.remote, opened.remote_port, opened.local) == ("10.231.7.2", 9099, "10.231.7.1")
        process = opened.process
        assert process is not None and process.name and process.name.startswith("python")
        assert process.command_line and "create_connection" in process.command_line
        assert process.user == "root" and process.parents[0].pid == os.getpid()
        assert opened.netns is not None and opened.netns != os.stat("/proc/self/ns/net").st_ino
        # the listener's accepted socket is inbound (its port listens) and is not reported
        assert not [o for o in collected.items if isinstance(o, ConnectionObservation) and o.local_port == 9099]
        wait_for(lambda: [c for c in sensor.connections() if (c.bytes_sent or 0) >= UPLOAD_BYTES], timeout=15,
                 what="the kernel's byte count for the socket")
        uploader.stdin.write("\n")
        uploader.stdin.flush()
        assert uploader.stdout.readline().strip() == "closed"
        (closed,) = wait_for(lambda: connections(collected, "closed", uploader.pid), timeout=15,
                             what="the connection to be reported closed")
        assert closed.bytes_sent is not None and closed.bytes_sent >= UPLOAD_BYTES
        assert closed.bytes_source == "tcp_info"
        assert listener.stdout.readline().strip() == str(UPLOAD_BYTES)
    finally:
        sensor.stop()
        for proc in (uploader, listener):
            if proc is None:
                continue
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def test_loopback_and_unspecified_peers_are_not_egress() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("::ffff:127.0.0.1")
    assert _is_loopback("0.0.0.0")
    assert not _is_loopback("10.231.7.2") and not _is_loopback("2001:db8::1")


SHORT_CLIENT = textwrap.dedent("""
    import socket, sys
    sock = socket.create_connection(("10.231.7.2", 9099), timeout=10)
    sock.sendall(b"s" * int(sys.argv[1]))
    sock.close()
""")

SLOW_UPLOADER = textwrap.dedent("""
    import socket, sys, time
    sock = socket.create_connection(("10.231.7.2", 9099), timeout=10)
    for _ in range(int(sys.argv[2])):
        sock.sendall(b"l" * int(sys.argv[1]))
        time.sleep(0.1)
    sock.close()  # at once: the last chunks may still be in flight, the final count must have them
""")

UDP_SINK = textwrap.dedent("""
    import socket, sys
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("10.231.7.2", 9098))
    print("listening", flush=True)
    sys.stdin.readline()
""")

UDP_SENDER = textwrap.dedent("""
    import socket, sys
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("10.231.7.2", 9098))
    print("connected", flush=True)
    sys.stdin.readline()
    for _ in range(int(sys.argv[2])):
        sock.send(b"u" * int(sys.argv[1]))
    print("sent", flush=True)
    sys.stdin.readline()
    sock.close()
""")


class Procs:
    """Processes a test started inside its namespaces: killed and reaped at the end, whatever happened."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def run(self, netns: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["ip", "netns", "exec", netns, *args], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def say(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def closed_to(collected: Collected, port: int) -> list[ConnectionObservation]:
    return [o for o in list(collected.items) if isinstance(o, ConnectionObservation) and o.phase == "closed"
            and o.remote == "10.231.7.2" and o.remote_port == port]


@pytest.fixture
def exact(namespaces: tuple[str, str], cache: ProcessCache, collected: Collected
          ) -> Iterator[tuple[str, str, Procs, ProcessCache]]:
    """The namespaces, with a resident in the client one (as a container has), so the sensor follows it."""
    for why in (sock_diag_unavailable(), destroy_notices_unavailable()):
        if why:
            pytest.skip(why)
    client, server = namespaces
    procs = Procs()
    try:
        procs.run(client, PYTHON, "-c", "import sys; sys.stdin.readline()")
        yield client, server, procs, cache
    finally:
        procs.close()


def start_following(sensor: NetworkSensor, netns: str) -> None:
    inode = os.stat(f"/run/netns/{netns}").st_ino
    sensor.start()
    wait_for(lambda: inode in sensor.followed_namespaces(), timeout=15,
             what=f"the sensor to follow namespace {netns}")


def test_connection_shorter_than_a_poll_has_its_final_bytes(exact: tuple[str, str, Procs, ProcessCache],
                                                            collected: Collected) -> None:
    client, server, procs, cache = exact
    sensor = NetworkSensor(cache, collected.add, collected.add_health, interval=30.0)  # one poll: at start
    try:
        listener = procs.run(server, PYTHON, "-c", LISTENER)
        assert line(listener) == "listening"
        start_following(sensor, client)
        began = time.monotonic()
        subprocess.run(["ip", "netns", "exec", client, PYTHON, "-c", SHORT_CLIENT, str(SHORT_BYTES)], check=True,
                       timeout=20)
        assert time.monotonic() - began < sensor.interval  # no poll saw it: only its destroy notice can
        (closed,) = wait_for(lambda: closed_to(collected, 9099), timeout=15, what="the short connection's record")
        assert closed.final and closed.bytes_source == "tcp_info" and closed.protocol == "tcp"
        assert closed.bytes_sent == SHORT_BYTES and closed.bytes_acked == SHORT_BYTES
        assert closed.local == "10.231.7.1" and closed.netns == os.stat(f"/run/netns/{client}").st_ino
        # the kernel's notice names no process or user and the process is gone: the record says so
        assert closed.process is None and closed.owner == UNKNOWN_OWNER and closed.seconds is None
        assert line(listener) == str(SHORT_BYTES)
        assert "socket-destroy notices received" in sensor.status().message and sensor.destroy_received >= 1
    finally:
        sensor.stop()


def test_long_upload_final_record_has_every_byte(exact: tuple[str, str, Procs, ProcessCache],
                                                 collected: Collected) -> None:
    client, server, procs, cache = exact
    sensor = NetworkSensor(cache, collected.add, collected.add_health, interval=0.2)
    try:
        listener = procs.run(server, PYTHON, "-c", LISTENER)
        assert line(listener) == "listening"
        start_following(sensor, client)
        uploader = procs.run(client, PYTHON, "-c", SLOW_UPLOADER, str(LONG_CHUNK), str(LONG_CHUNKS))
        assert uploader.wait(timeout=30) == 0
        total = LONG_CHUNK * LONG_CHUNKS
        (closed,) = wait_for(lambda: closed_to(collected, 9099), timeout=15, what="the upload's final record")
        assert closed.final and closed.bytes_sent == total and closed.bytes_acked == total
        assert closed.process is not None and closed.process.pid == uploader.pid
        assert closed.owner == "socket-inode" and closed.seconds is not None and closed.seconds > 0.5
        opened = [o for o in collected.items if isinstance(o, ConnectionObservation) and o.phase == "opened"
                  and o.remote_port == 9099]
        assert len(opened) == 1 and (opened[0].bytes_sent or 0) < total  # a poll saw it early, not at the end
        assert line(listener) == str(total)
    finally:
        sensor.stop()


def test_udp_datagrams_are_recorded_with_a_named_bound(exact: tuple[str, str, Procs, ProcessCache],
                                                       collected: Collected) -> None:
    client, server, procs, cache = exact
    sensor = NetworkSensor(cache, collected.add, collected.add_health, interval=0.2)
    try:
        sink = procs.run(server, PYTHON, "-c", UDP_SINK)
        assert line(sink) == "listening"
        start_following(sensor, client)
        sender = procs.run(client, PYTHON, "-c", UDP_SENDER, str(DATAGRAM), str(DATAGRAMS))
        assert line(sender) == "connected"
        wait_for(lambda: [o for o in list(collected.items) if isinstance(o, ConnectionObservation)
                          and o.phase == "opened" and o.protocol == "udp"], timeout=15,
                 what="a poll to see the connected UDP socket")
        say(sender)
        assert line(sender) == "sent"
        say(sender)
        assert sender.wait(timeout=10) == 0
        (closed,) = wait_for(lambda: closed_to(collected, 9098), timeout=15, what="the UDP flow's record")
        assert closed.protocol == "udp" and closed.bytes_source == NETNS_BOUND and closed.final
        # an upper bound: the datagrams, their headers and whatever else the namespace sent (ARP)
        assert closed.bytes_sent is not None and DATAGRAM * DATAGRAMS <= closed.bytes_sent < 2 * DATAGRAM * DATAGRAMS
        assert closed.process is not None and closed.process.pid == sender.pid and closed.owner == "socket-inode"
    finally:
        sensor.stop()
