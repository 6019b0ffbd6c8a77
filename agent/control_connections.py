"""The control socket's connections: accepted, framed into request lines, timed out and capped.

One thread watches every connection (a selector), and a small fixed pool answers the requests, so a
flood of connections costs neither threads nor unbounded descriptors: each uid may hold `per_uid`
connections and the socket `total`; a connection over either cap gets one error line and is closed.
Every deadline belongs to the agent, none to the client:
- idle: a connection with nothing under way is closed after `idle_seconds`;
- request: a request line must be complete `request_seconds` after its first byte (a client that trickles
  bytes never holds a connection), and a reply must be taken by the client within as long;
- stop: connections are closed where they stand; a request being answered is given `stop_seconds`.
A client may send several requests on one connection, one at a time: the next line is read once the
reply to the previous one is written.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    per_uid: int = 8  # the app opens one connection per request; a few at once is plenty
    total: int = 128
    idle_seconds: float = 10.0
    request_seconds: float = 5.0
    max_request_bytes: int = 64 * 1024
    workers: int = 2  # requests answered at once (a live test or a destination change may take seconds)
    stop_seconds: float = 2.0


DEFAULT_LIMITS = Limits()


@dataclass
class _Connection:
    sock: socket.socket
    peer: Any  # control.Peer (kept opaque here: this module only counts its uid)
    uid: int
    since: float  # when the current phase (idle, request, reply) started
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytes = b""
    busy: bool = False  # a request of this connection is being answered
    close_after_reply: bool = False
    watching: int = 0  # the selector events registered (0: not registered)


Answer = Callable[[Any, bytes], bytes]  # (peer, request line without its newline) -> reply line with newline
Refusal = Callable[[str], bytes]  # reason -> the error line sent before closing


class ConnectionServer:
    """Serves a bound, listening Unix socket until stop(); `answer` runs on the worker threads."""

    def __init__(self, listener: socket.socket, answer: Answer, refusal: Refusal, peer_of: Callable[[socket.socket],
                 Any], limits: Limits = DEFAULT_LIMITS, *, name: str = "ww-control") -> None:
        self.listener = listener
        self.answer = answer
        self.refusal = refusal
        self.peer_of = peer_of
        self.limits = limits
        self.name = name
        self.refused_connections = 0  # over a cap
        self.timed_out = 0  # idle, slow request or reply not taken
        self._connections: dict[int, _Connection] = {}  # by file descriptor
        self._per_uid: Counter[int] = Counter()
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._work: queue.Queue[tuple[int, _Connection, bytes] | None] = queue.Queue()
        self._done: queue.Queue[tuple[int, _Connection, bytes]] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept_paused_until = 0.0
        self._last_refusal_log = float("-inf")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.listener.setblocking(False)
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        loop = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._threads = [loop] + [threading.Thread(target=self._worker, name=f"{self.name}-worker-{n}", daemon=True)
                                  for n in range(self.limits.workers)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Close every connection where it stands; never waits for a client."""
        self._stopping.set()
        self._wake()
        for _ in range(self.limits.workers):
            self._work.put(None)
        deadline = time.monotonic() + self.limits.stop_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():  # a request still being answered (a slow live test): left to finish alone
                log.warning("control: %s still busy at stop; not waiting for it", thread.name)
        self._threads = []

    def connections(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------------ the selector thread

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, mask in self._selector.select(self._next_deadline()):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._ready(key.data, mask)
                self._finish_answered()
                self._expire(time.monotonic())
                self._resume_accepting()
        except Exception:  # never expected; the agent keeps running without its socket
            log.exception("control: the socket loop failed")
        finally:
            for connection in list(self._connections.values()):
                self._close(connection)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self.listener)
            self._selector.close()
            self.listener.close()
            self._wake_read.close()
            self._wake_write.close()

    def _next_deadline(self) -> float:
        if not self._connections:
            return 1.0
        now = time.monotonic()
        soonest = min(self._deadline(c) for c in self._connections.values())
        return min(1.0, max(0.0, soonest - now))

    def _deadline(self, connection: _Connection) -> float:
        if connection.busy:
            return float("inf")  # the agent's own work: not the client's to run out
        if connection.outbox or connection.inbox:
            return connection.since + self.limits.request_seconds
        return connection.since + self.limits.idle_seconds

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("control: cannot accept connections (%s); pausing a moment", error.strerror)
                    self._selector.unregister(self.listener)
                    self._accept_paused_until = time.monotonic() + 0.5
                    return
                raise
            try:
                peer = self.peer_of(sock)
            except OSError:
                sock.close()
                continue
            uid = int(peer.uid)
            reason = ""
            if self._per_uid[uid] >= self.limits.per_uid:
                reason = f"too many connections from uid {uid} (at most {self.limits.per_uid} at once)"
            elif len(self._connections) >= self.limits.total:
                reason = f"too many connections to the agent (at most {self.limits.total} at once)"
            if reason:
                self._refuse(sock, uid, reason)
                continue
            sock.setblocking(False)
            connection = _Connection(sock, peer, uid, time.monotonic())
            self._connections[sock.fileno()] = connection
            self._per_uid[uid] += 1
            self._watch(connection, selectors.EVENT_READ)

    def _refuse(self, sock: socket.socket, uid: int, reason: str) -> None:
        self.refused_connections += 1
        now = time.monotonic()
        if now - self._last_refusal_log > 10:  # a flood is logged, not every connection of it
            log.warning("control: refused a connection: %s (%d refused so far)", reason, self.refused_connections)
            self._last_refusal_log = now
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(self.refusal(reason))
        sock.close()

    def _resume_accepting(self) -> None:
        if self._accept_paused_until and time.monotonic() >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._selector.register(self.listener, selectors.EVENT_READ, "accept")

    def _ready(self, connection: _Connection, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(connection)
        elif mask & selectors.EVENT_READ:
            self._read(connection)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)
            return
        if not data:
            self._close(connection)
            return
        if not connection.inbox:
            connection.since = time.monotonic()  # a request starts: it has request_seconds to arrive whole
        connection.inbox += data
        self._next_request(connection)

    def _next_request(self, connection: _Connection) -> None:
        """Hand the next whole line to a worker, or refuse an oversized one; otherwise keep reading."""
        limit = self.limits.max_request_bytes
        if connection.busy or connection.outbox:  # one request at a time: the next waits in the kernel
            return
        end = connection.inbox.find(b"\n")
        if end > limit or (end < 0 and len(connection.inbox) > limit):
            connection.inbox.clear()
            connection.close_after_reply = True
            self._reply(connection, self.refusal(f"request too large (at most {limit} bytes on one line)"))
            return
        if end < 0:
            return
        line = bytes(connection.inbox[:end])
        del connection.inbox[:end + 1]
        connection.busy = True
        self._watch(connection, 0)  # nothing more is read until this request is answered
        self._work.put((connection.sock.fileno(), connection, line))

    def _reply(self, connection: _Connection, reply: bytes) -> None:
        connection.outbox = reply
        connection.since = time.monotonic()  # the client has request_seconds to take it
        self._flush(connection)

    def _flush(self, connection: _Connection) -> None:
        try:
            sent = connection.sock.send(connection.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(connection)
            return
        connection.outbox = connection.outbox[sent:]
        if connection.outbox:
            self._watch(connection, selectors.EVENT_WRITE)
            return
        if connection.close_after_reply:
            self._close(connection)
            return
        self._watch(connection, selectors.EVENT_READ)
        connection.since = time.monotonic()
        if connection.inbox:  # the client already sent its next request
            self._next_request(connection)

    def _finish_answered(self) -> None:
        while True:
            try:
                fd, connection, reply = self._done.get_nowait()
            except queue.Empty:
                return
            connection.busy = False
            if self._connections.get(fd) is connection:  # not closed (or its number reused) meanwhile
                self._reply(connection, reply)

    def _expire(self, now: float) -> None:
        for connection in [c for c in self._connections.values() if self._deadline(c) <= now]:
            self.timed_out += 1
            self._close(connection)

    def _close(self, connection: _Connection) -> None:
        fd = connection.sock.fileno()
        if fd < 0 or self._connections.get(fd) is not connection:
            return
        del self._connections[fd]
        self._per_uid[connection.uid] -= 1
        if self._per_uid[connection.uid] <= 0:
            del self._per_uid[connection.uid]
        self._watch(connection, 0)
        connection.sock.close()

    def _watch(self, connection: _Connection, events: int) -> None:
        if events == connection.watching:
            return
        if connection.watching and events:
            self._selector.modify(connection.sock, events, connection)
        elif events:
            self._selector.register(connection.sock, events, connection)
        else:
            self._selector.unregister(connection.sock)
        connection.watching = events

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already woken) or closed (stopped)
            self._wake_write.send(b"\0")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_read.recv(4096):
                pass

    # ------------------------------------------------------------------ the workers

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None or self._stopping.is_set():
                return
            fd, connection, line = item
            try:
                reply = self.answer(connection.peer, line)
            except Exception as error:  # one bad request never takes the socket down
                log.exception("control: request failed")
                reply = self.refusal(f"internal error: {type(error).__name__}")
            self._done.put((fd, connection, reply))
            self._wake()
