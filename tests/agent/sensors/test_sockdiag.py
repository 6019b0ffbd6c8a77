"""sock_diag on this kernel, in the test's own namespace: a loopback TCP connection's destroy notice
carries its cookie (the one a dump showed) and its exact final payload count; a connected UDP socket's
notice names it as UDP, with no byte counts (the kernel keeps none)."""

from __future__ import annotations

import select
import socket
import time

import pytest

from weightwarden.agent.sensors import sockdiag
from weightwarden.agent.sensors.network import destroy_notices_unavailable

PAYLOAD = 300_000


def notices(sock: socket.socket, until: float, want: set[int]) -> dict[int, sockdiag.TcpSocket]:
    found: dict[int, sockdiag.TcpSocket] = {}
    while want - set(found) and time.monotonic() < until:
        ready, _, _ = select.select([sock], [], [], max(until - time.monotonic(), 0))
        if ready:
            found.update({s.cookie: s for s in sockdiag.destroyed(sock.recv(1 << 16)) if s.cookie in want})
    return found


def test_destroy_notice_has_the_cookie_and_final_counts() -> None:
    why = destroy_notices_unavailable()
    if why:
        pytest.skip(why)
    listener = sockdiag.destroy_socket()
    diag = sockdiag.diag_socket()
    server = socket.create_server(("127.0.0.1", 0))
    try:
        client = socket.create_connection(server.getsockname(), timeout=10)
        accepted, _ = server.accept()
        port = client.getsockname()[1]
        (dumped,) = [s for s in sockdiag.dump_tcp(diag) if s.local_port == port]
        assert dumped.cookie and dumped.inode and dumped.state == "ESTABLISHED"
        client.sendall(b"m" * PAYLOAD)
        got = 0
        while got < PAYLOAD:
            got += len(accepted.recv(1 << 16))
        client.close()
        accepted.close()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.connect(("127.0.0.1", 9))
        (udp_dumped,) = [s for s in sockdiag.dump_udp(diag) if s.local_port == udp.getsockname()[1]]
        udp.close()
        found = notices(listener, time.monotonic() + 10, {dumped.cookie, udp_dumped.cookie})
        tcp_end = found[dumped.cookie]
        assert (tcp_end.local_port, tcp_end.remote_port, tcp_end.protocol) == (port, server.getsockname()[1],
                                                                                socket.IPPROTO_TCP)
        assert tcp_end.bytes_sent == PAYLOAD and tcp_end.bytes_acked == PAYLOAD
        assert tcp_end.inode == 0  # the kernel no longer knows the file: why the cookie is the key
        udp_end = found[udp_dumped.cookie]
        assert udp_end.protocol == socket.IPPROTO_UDP and udp_end.remote_port == 9 and udp_end.bytes_sent is None
    finally:
        for sock in (listener, diag, server):
            sock.close()


def test_unique_bytes_sent_counts_each_byte_once() -> None:
    assert sockdiag.unique_bytes_sent(1_500, 500, 1_002) == 1_000
    assert sockdiag.unique_bytes_sent(None, None, 1_001) == 1_000  # before 4.19: acked less the SYN
    assert sockdiag.unique_bytes_sent(None, None, None) is None
