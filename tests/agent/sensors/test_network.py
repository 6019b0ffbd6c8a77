"""The network sensor on a real TCP upload between two network namespaces the test creates (veth pair,
10.x addresses that exist only inside them): the uploader is named, with its parent chain, the
destination and the bytes the kernel counted for the socket. The namespaces are removed even on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import uuid
from collections.abc import Iterator

import pytest

from tests.agent.sensors.conftest import PYTHON, Collected, wait_for
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.network import ConnectionObservation, NetworkSensor, _is_loopback, sock_diag_unavailable

pytestmark = pytest.mark.root

UPLOAD_BYTES = 3 * 1024 * 1024


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
