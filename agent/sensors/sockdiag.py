"""NETLINK_SOCK_DIAG (the interface `ss -ti` uses): every TCP or UDP socket of a network namespace, with
the kernel's per-socket TCP byte counters (tcp_info) and its inode and cookie; and the kernel's notice of
each socket's destruction (multicast groups SKNLGRP_INET{,6}_{TCP,UDP}_DESTROY), which carries the final
tcp_info of a TCP socket, however short it lived.

Facts from the kernel's uapi headers (linux/sock_diag.h, linux/inet_diag.h, linux/tcp.h) and its
net/core/sock_diag.c, checked on 6.18:
- A destroy notice is an inet_diag_msg (family, state, ports, addresses, cookie) with INET_DIAG_PROTOCOL
  and, for TCP, INET_DIAG_INFO; idiag_uid and idiag_inode are zero (the socket has no file any more), so
  the cookie (stable for the socket's life, also in every dump) is the only key joining it to a dump.
- Receiving them needs no privilege beyond being in the namespace (the family allows non-root
  listeners) and not CONFIG_INET_DIAG_DESTROY (that one is SOCK_DESTROY, killing sockets).
- While anyone listens, the kernel builds each notice on a workqueue as sockets are freed: cheap, but
  not free, so the sensor listens only in namespaces it follows.
- tcp_info: bytes_sent counts every payload byte transmitted, retransmissions included; bytes_retrans
  the retransmitted ones (both since 4.19); bytes_acked counts acknowledged sequence space, which
  includes the SYN and the FIN (one each). UDP sockets have no byte counters at all.

A netlink socket answers for the network namespace it was created in, so `socket_in_netns` creates one
inside another namespace (setns on a short-lived helper thread: setns changes only the calling thread)
to see the sockets of containers and `ip netns` namespaces too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
INET_DIAG_PROTOCOL = 10
SOL_NETLINK = 270
# linux/sock_diag.h enum sknetlink_groups: 1 INET_TCP_DESTROY, 2 INET_UDP_DESTROY, 3 INET6_TCP_DESTROY,
# 4 INET6_UDP_DESTROY; bound as the bitmask of the socket address (1 << (group - 1))
DESTROY_GROUPS = 0b1111
SO_RCVBUFFORCE = 33
DESTROY_BUFFER = 4 << 20  # a burst of closes (a server shutting down) fits; more is counted as lost
CLONE_NEWNET = 0x40000000

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
              7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}
TCP_LISTEN = 10

_NLMSGHDR = struct.Struct("=IHHII")
_REQ = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states; then the 48-byte sockid
_SOCKID = struct.Struct(">HH16s16s")  # ports and addresses in network order
_SOCKID_TAIL = struct.Struct("=III")  # interface, cookie low and high 32 bits (native order)
_MSG = struct.Struct("=BBBB")  # family, state, timer, retrans
_MSG_TAIL = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode
_RTA = struct.Struct("=HH")
_UNIX_REQ = struct.Struct("=BBHIIIII")  # family, protocol, pad, states, inode, show, cookie (unix_diag_req)
_UNIX_MSG = struct.Struct("=BBBBIII")  # family, type, state, pad, inode, cookie (unix_diag_msg)
UDIAG_SHOW_PEER = 0x4
UNIX_DIAG_PEER = 2
# struct tcp_info offsets (linux/tcp.h): bytes_acked 120, bytes_received 128, bytes_sent and bytes_retrans
# 200 and 208 (4.19+)
_TCPI_BYTES_ACKED, _TCPI_BYTES_RECEIVED, _TCPI_BYTES_SENT, _TCPI_BYTES_RETRANS = 120, 128, 200, 208


@dataclass(frozen=True, slots=True)
class TcpSocket:
    """A TCP or UDP socket as sock_diag describes it (UDP: no byte counts, state 1 = connected, 7 = not)."""

    family: int
    state: str
    local: str
    local_port: int
    remote: str
    remote_port: int
    uid: int
    inode: int
    bytes_sent: int | None  # payload bytes that left, each once: tcpi_bytes_sent - tcpi_bytes_retrans
    bytes_acked: int | None  # payload bytes the peer acknowledged (tcpi_bytes_acked less the SYN and FIN)
    bytes_received: int | None
    cookie: int = 0
    protocol: int = socket.IPPROTO_TCP


def unique_bytes_sent(info_sent: int | None, retrans: int | None, acked: int | None) -> int | None:
    """Payload bytes transmitted, each byte once: bytes_sent counts a retransmitted byte again (so it
    overstates a lossy upload), bytes_acked misses what left but was not acknowledged yet when the socket
    died; before 4.19 (no bytes_sent) the acknowledged sequence space less the SYN is what there is."""
    if info_sent is not None:
        return info_sent - (retrans or 0)
    if acked is not None:
        return max(acked - 1, 0)
    return None


def _request(family: int, protocol: int = socket.IPPROTO_TCP, states: int = 0xFFFFFFFF) -> bytes:
    sockid = b"\0" * 48
    body = _REQ.pack(family, protocol, 1 << (INET_DIAG_INFO - 1), 0, states) + sockid
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body


def _address(family: int, raw: bytes) -> str:
    return str(ipaddress.ip_address(raw[:4] if family == socket.AF_INET else raw))


def dump_tcp(sock: socket.socket) -> list[TcpSocket]:
    """Every TCP socket (IPv4 and IPv6) the namespace of `sock` holds."""
    return dump(sock, socket.IPPROTO_TCP)


def dump_udp(sock: socket.socket) -> list[TcpSocket]:
    """Every UDP socket (IPv4 and IPv6) the namespace of `sock` holds."""
    return dump(sock, socket.IPPROTO_UDP)


def dump(sock: socket.socket, protocol: int, states: int = 0xFFFFFFFF) -> list[TcpSocket]:
    """Every socket of `protocol` (IPv4 and IPv6) of the namespace of `sock` whose state is in the bitmask
    `states` (1 << state: 1 << TCP_LISTEN for listeners only)."""
    found: list[TcpSocket] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        answers = _answers(sock, _request(family, protocol, states))
        found.extend(_parse(data, start, end, protocol) for data, start, end in answers)
    return found


def listening_ports(sock: socket.socket) -> set[int]:
    """The TCP ports the namespace of `sock` listens on now (a dump of listening sockets only: cheap)."""
    ports: set[int] = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        for data, start, _end in _answers(sock, _request(family, socket.IPPROTO_TCP, 1 << TCP_LISTEN)):
            ports.add(_SOCKID.unpack_from(data, start + 4)[0])
    return ports


def unix_peers(sock: socket.socket) -> dict[int, int]:
    """Unix socket inode -> its peer's inode, for every connected Unix socket of the namespace of `sock`
    (the two ends of a socketpair, a client and the socket its server accepted; UNIX_DIAG_PEER)."""
    body = _UNIX_REQ.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, UDIAG_SHOW_PEER, 0, 0)
    request = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body
    peers: dict[int, int] = {}
    for data, start, end in _answers(sock, request):
        if end - start < _UNIX_MSG.size:
            continue
        _family, _kind, _state, _pad, inode, _cookie_low, _cookie_high = _UNIX_MSG.unpack_from(data, start)
        at = start + _UNIX_MSG.size
        while at + _RTA.size <= end:
            rta_len, rta_type = _RTA.unpack_from(data, at)
            if rta_len < _RTA.size:
                break
            if rta_type == UNIX_DIAG_PEER and rta_len >= _RTA.size + 4:
                peer = struct.unpack_from("=I", data, at + _RTA.size)[0]
                if peer:
                    peers[inode] = peer
            at += (rta_len + 3) & ~3
    return peers


def _answers(sock: socket.socket, request: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Send a dump request; each answer as (buffer, start of its body, end)."""
    sock.send(request)
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size or kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                error = -struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
                if error:
                    raise OSError(error, f"sock_diag: {os.strerror(error)}")
                return
            if kind == SOCK_DIAG_BY_FAMILY:
                yield data, offset + _NLMSGHDR.size, min(offset + length, len(data))
            offset += (length + 3) & ~3


def destroyed(data: bytes) -> list[TcpSocket]:
    """The sockets named by one read of a destroy-group socket (several notices may share a read)."""
    found: list[TcpSocket] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + 72:
            found.append(_parse(data, offset + _NLMSGHDR.size, offset + length, None))
        offset += (length + 3) & ~3
    return found


def _parse(data: bytes, start: int, end: int, protocol: int | None) -> TcpSocket:
    fam, state, _timer, _retrans = _MSG.unpack_from(data, start)
    sport, dport, src, dst = _SOCKID.unpack_from(data, start + 4)
    _if, cookie_low, cookie_high = _SOCKID_TAIL.unpack_from(data, start + 4 + _SOCKID.size)
    _expires, _rq, _wq, uid, inode = _MSG_TAIL.unpack_from(data, start + 52)
    info: bytes = b""
    at = start + 72
    while at + _RTA.size <= end:
        rta_len, rta_type = _RTA.unpack_from(data, at)
        if rta_len < _RTA.size:
            break
        if rta_type == INET_DIAG_INFO:
            info = data[at + _RTA.size:at + rta_len]
        elif rta_type == INET_DIAG_PROTOCOL and protocol is None and rta_len > _RTA.size:
            protocol = data[at + _RTA.size]
        at += (rta_len + 3) & ~3

    def u64(offset: int) -> int | None:
        return struct.unpack_from("=Q", info, offset)[0] if len(info) >= offset + 8 else None

    acked = u64(_TCPI_BYTES_ACKED)
    sent = unique_bytes_sent(u64(_TCPI_BYTES_SENT), u64(_TCPI_BYTES_RETRANS), acked)
    # the SYN takes one of the acknowledged sequence numbers; an acknowledged FIN another, and it comes
    # after all the data, so the payload acknowledged is never more than the payload sent
    payload_acked = None if acked is None else max(min(acked - 1, sent if sent is not None else acked - 1), 0)
    return TcpSocket(fam, TCP_STATES.get(state, str(state)), _address(fam, src), sport, _address(fam, dst), dport,
                     uid, inode, sent, payload_acked, u64(_TCPI_BYTES_RECEIVED), cookie_low | cookie_high << 32,
                     protocol if protocol is not None else socket.IPPROTO_TCP)


def diag_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)


def destroy_socket(sock: socket.socket | None = None) -> socket.socket:
    """A sock_diag socket (new, or `sock` made in another namespace) subscribed to the destroy notices
    of TCP and UDP sockets, IPv4 and IPv6, of the namespace it was created in."""
    sock = sock if sock is not None else diag_socket()
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, DESTROY_BUFFER)
        except OSError:  # not root: the ordinary limit (net.core.rmem_max)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, DESTROY_BUFFER)
        sock.bind((0, DESTROY_GROUPS))
    except OSError:
        sock.close()
        raise
    return sock


def socket_in_netns(ns_path: str, make: Callable[[], socket.socket] = diag_socket) -> socket.socket:
    """A socket made by `make` (default: a sock_diag socket) inside the network namespace at `ns_path`
    (/proc/<pid>/ns/net); a socket keeps the namespace it was created in."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        own = target = -1
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            target = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
            if libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {ns_path}: {os.strerror(err)}")
            try:
                result.append(make())
            finally:
                libc.setns(own, CLONE_NEWNET)
        except BaseException as error:  # handed to the caller's thread
            result.append(error)
        finally:
            for fd in (own, target):
                if fd >= 0:
                    os.close(fd)

    thread = threading.Thread(target=work, name="ww-setns", daemon=True)
    thread.start()
    thread.join(timeout=5)
    if not result:
        raise OSError("setns helper did not finish")
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
