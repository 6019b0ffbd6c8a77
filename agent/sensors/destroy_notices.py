"""The reader thread of the sockets that receive the kernel's socket-destroy notices (sockdiag.destroy_socket),
one per followed network namespace: blocked in poll() on all of them, it hands each ready one to `drain`.

Shared by the network sensor and the serving sensor. The sensor owns `followed` (netns -> socket) and
`retired` (sockets it stopped following) and changes them under `lock`; the reader registers what is
followed, and closes a retired socket only once it no longer polls it (closing a polled descriptor from
another thread would leave poll() watching a number the next socket may reuse).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from collections.abc import Callable, Mapping

from weightwarden.agent.sensors.base import SensorThread

log = logging.getLogger(__name__)


def read_notices(thread: SensorThread, lock: threading.Lock, followed: Mapping[int, socket.socket],
                 retired: list[socket.socket], drain: Callable[[int, socket.socket], None]) -> None:
    """Run until `thread` is stopped; `thread.waker` makes it look at `followed` and `retired` again."""
    poller = select.poll()
    waker = thread.waker.fileno()
    poller.register(waker, select.POLLIN)
    registered: dict[int, tuple[int, socket.socket]] = {}  # fd -> (netns, socket)
    while not thread.stopping.is_set():
        with lock:
            wanted = {sock.fileno(): (netns, sock) for netns, sock in followed.items()}
            closing = list(retired)
            retired.clear()
        for fd in [fd for fd in registered if fd not in wanted]:
            poller.unregister(fd)
            del registered[fd]
        for sock in closing:
            sock.close()
        for fd, entry in wanted.items():
            if fd not in registered:
                poller.register(fd, select.POLLIN)
                registered[fd] = entry
        for fd, _event in poller.poll():
            if fd == waker:
                thread.waker.drain()
            elif fd in registered:
                try:
                    drain(*registered[fd])
                except Exception:  # one bad read never ends the reader
                    log.exception("socket-destroy notices of namespace %s not handled", registered[fd][0])
