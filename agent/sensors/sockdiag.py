"""NETLINK_SOCK_DIAG (the interface `ss -ti` uses): every TCP socket of a network namespace, with the
kernel's per-socket byte counters (tcp_info bytes_sent / bytes_acked / bytes_received) and its inode.

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
from dataclasses import dataclass

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
CLONE_NEWNET = 0x40000000

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
              7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}
TCP_LISTEN = 10

_NLMSGHDR = struct.Struct("=IHHII")
_REQ = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states; then the 48-byte sockid
_SOCKID = struct.Struct(">HH16s16sII")  # ports big-endian; if + cookie native (we never read them back)
_MSG = struct.Struct("=BBBB")  # family, state, timer, retrans
_MSG_TAIL = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode
_RTA = struct.Struct("=HH")
# struct tcp_info offsets (linux/tcp.h): bytes_acked 120, bytes_received 128, bytes_sent 200 (4.19+)
_TCPI_BYTES_ACKED, _TCPI_BYTES_RECEIVED, _TCPI_BYTES_SENT = 120, 128, 200


@dataclass(frozen=True, slots=True)
class TcpSocket:
    family: int
    state: str
    local: str
    local_port: int
    remote: str
    remote_port: int
    uid: int
    inode: int
    bytes_sent: int | None
    bytes_acked: int | None
    bytes_received: int | None


def _request(family: int) -> bytes:
    sockid = b"\0" * 48
    body = _REQ.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0, 0xFFFFFFFF) + sockid
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body


def _address(family: int, raw: bytes) -> str:
    return str(ipaddress.ip_address(raw[:4] if family == socket.AF_INET else raw))


def dump_tcp(sock: socket.socket) -> list[TcpSocket]:
    """Every TCP socket (IPv4 and IPv6) the namespace of `sock` holds."""
    found: list[TcpSocket] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        sock.send(_request(family))
        done = False
        while not done:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    done = True
                    break
                if kind == NLMSG_DONE:
                    done = True
                elif kind == NLMSG_ERROR:
                    error = -struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
                    if error:
                        raise OSError(error, f"sock_diag: {os.strerror(error)}")
                    done = True
                elif kind == SOCK_DIAG_BY_FAMILY:
                    found.append(_parse(data, offset + _NLMSGHDR.size, offset + length))
                offset += (length + 3) & ~3
    return found


def _parse(data: bytes, start: int, end: int) -> TcpSocket:
    fam, state, _timer, _retrans = _MSG.unpack_from(data, start)
    sport, dport, src, dst, _if, _cookie = _SOCKID.unpack_from(data, start + 4)
    _expires, _rq, _wq, uid, inode = _MSG_TAIL.unpack_from(data, start + 52)
    info: bytes = b""
    at = start + 72
    while at + _RTA.size <= end:
        rta_len, rta_type = _RTA.unpack_from(data, at)
        if rta_len < _RTA.size:
            break
        if rta_type == INET_DIAG_INFO:
            info = data[at + _RTA.size:at + rta_len]
        at += (rta_len + 3) & ~3

    def u64(offset: int) -> int | None:
        return struct.unpack_from("=Q", info, offset)[0] if len(info) >= offset + 8 else None

    return TcpSocket(fam, TCP_STATES.get(state, str(state)), _address(fam, src), sport, _address(fam, dst), dport,
                     uid, inode, u64(_TCPI_BYTES_SENT), u64(_TCPI_BYTES_ACKED), u64(_TCPI_BYTES_RECEIVED))


def diag_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)


def socket_in_netns(ns_path: str) -> socket.socket:
    """A sock_diag socket inside the network namespace at `ns_path` (/proc/<pid>/ns/net)."""
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
                result.append(diag_socket())
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
