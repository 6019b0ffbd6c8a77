"""Listening TCP sockets in every network namespace, and who holds them.

A namespace is found through a process in it (/proc/<pid>/ns/net; one path per namespace inode); its
listeners come from one sock_diag dump of LISTEN sockets made by a socket created inside it
(sockdiag.socket_in_netns). A listener's process is found by its socket inode in /proc/<pid>/fd
(network.socket_holders): every pid holding it, a server's forked workers included.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import psutil

from weightwarden.agent.sensors import sockdiag


@dataclass(frozen=True, slots=True)
class Listener:
    netns: int
    family: int
    address: str
    port: int
    inode: int


def namespaces() -> dict[int, str]:
    """netns inode -> a /proc/<pid>/ns/net path naming it."""
    found: dict[int, str] = {}
    for pid in psutil.pids():
        path = f"/proc/{pid}/ns/net"
        try:
            found.setdefault(os.stat(path).st_ino, path)
        except OSError:
            continue
    return found


def own_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None


def listening(sock: socket.socket, netns: int) -> list[Listener]:
    """The TCP listeners of the namespace of `sock` (one dump of LISTEN sockets)."""
    return [Listener(netns, s.family, s.local, s.local_port, s.inode)
            for s in sockdiag.dump(sock, socket.IPPROTO_TCP, 1 << sockdiag.TCP_LISTEN)]


def accepts(listener: Listener, local: str, local_port: int) -> bool:
    """Whether a connection with this local end was accepted by `listener` (same port; its address, or any
    when it listens on every address)."""
    if local_port != listener.port:
        return False
    return listener.address in ("0.0.0.0", "::") or listener.address == local or \
        local.removeprefix("::ffff:") == listener.address
