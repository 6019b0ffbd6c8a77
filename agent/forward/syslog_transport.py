"""Syslog over TLS (RFC 5425), plain TCP (RFC 6587 octet counting) or UDP (RFC 5426).

TCP gives no application acknowledgement, so a record counts as delivered once (1) the kernel reports
its batch's bytes acknowledged by the receiver's TCP (TCP_INFO bytes_acked past the socket's byte count
after the batch was written; SIOCOUTQ = 0 as a fallback, Linux) and (2) the connection then stayed up
for `resend_window_seconds`. A receiver that dies closes the connection (FIN/RST), which we notice
before confirming; everything unconfirmed is then resent from the cursor after the reconnect. Duplicates
are therefore bounded by the window, and receivers dedupe on the id in the structured data. UDP has no
delivery signal at all: it is confirmed when sent, and documented as lossy.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import select
import socket
import ssl
import struct
import termios
import time
from dataclasses import dataclass

from weightwarden.agent.forward.render import Renderer, render_each
from weightwarden.agent.forward.syslog import octet_counted
from weightwarden.agent.forward.transport import Outcome, TransportError
from weightwarden.agent.store.outbox import OutboxRecord


@dataclass
class _Sent:
    sequence: int
    count: int
    position: int | None = None  # the socket's byte count (acked + queued) once this batch was written
    acked_at: float | None = None


def tls_context(*, ca_file: str = "", client_cert: str = "", client_key: str = "",
                verify: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        context.load_cert_chain(client_cert, client_key or None)
    return context


class SyslogTransport:
    def __init__(self, renderer: Renderer, *, address: str, port: int, transport: str = "tls",
                 ca_file: str = "", client_cert: str = "", client_key: str = "", server_name: str = "",
                 timeout: float = 15.0, resend_window: float = 2.0) -> None:
        self.renderer = renderer
        self.address = address
        self.port = port  # destinations.py fills in the default (destination_types.SYSLOG_PORTS)
        self.transport = transport
        self.server_name = server_name or address
        self.timeout = timeout
        self.resend_window = resend_window
        self._context: ssl.SSLContext | None = None
        if transport == "tls":
            try:
                self._context = tls_context(ca_file=ca_file, client_cert=client_cert, client_key=client_key)
            except (OSError, ssl.SSLError) as error:
                raise TransportError(f"TLS setup: {error}", config=True) from None
        self._sock: socket.socket | None = None
        self._sent: collections.deque[_Sent] = collections.deque()
        self._stalled_since: float | None = None  # bytes unacknowledged since then (a silent network)

    # ------------------------------------------------------------------ connection

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            if self.transport == "udp":
                sock = socket.socket(socket.AF_INET6 if ":" in self.address else socket.AF_INET, socket.SOCK_DGRAM)
                sock.connect((self.address, self.port))
            else:
                sock = socket.create_connection((self.address, self.port), timeout=self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._context is not None:
                    sock = self._context.wrap_socket(sock, server_hostname=self.server_name)
        except ssl.SSLCertVerificationError as error:
            raise TransportError(f"TLS certificate of {self.address}:{self.port} rejected: {error.verify_message}",
                                 config=True) from None
        except (OSError, ssl.SSLError) as error:
            raise TransportError(f"connect {self.address}:{self.port}: {error}") from None
        sock.settimeout(self.timeout)
        self._sock = sock
        return sock

    def reset(self) -> None:
        sock, self._sock = self._sock, None
        self._sent.clear()
        self._stalled_since = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if isinstance(sock, ssl.SSLSocket):
                sock.settimeout(2.0)
                sock.unwrap()  # close_notify: the receiver knows the stream ended on purpose
        except (OSError, ssl.SSLError, ValueError):
            pass
        with contextlib.suppress(OSError):
            sock.close()

    # ------------------------------------------------------------------ sending

    def send(self, records: list[OutboxRecord]) -> Outcome:
        messages, dead = render_each(records, self.renderer.syslog_message)
        sock = self._connect()
        if self.transport == "udp":
            for _record, message in messages:
                try:
                    sock.send(message)
                except OSError as error:
                    raise TransportError(f"udp send to {self.address}:{self.port}: {error}") from None
            return Outcome(confirmed=records[-1].sequence, delivered=len(messages), dead=dead)
        self._check_alive(sock)
        try:
            sock.sendall(b"".join(octet_counted(message) for _record, message in messages))
        except (OSError, ssl.SSLError) as error:
            raise TransportError(f"send to {self.address}:{self.port}: {error}") from None
        # The records no renderer could take are confirmed with the batch (never sent: nothing to resend).
        self._sent.append(_Sent(records[-1].sequence, len(messages), _written_bytes(sock)))
        self._stalled_since = None  # only a sender that stopped sending can tell a silent path
        outcome = self.poll()
        outcome.dead.extend(dead)
        return outcome

    def send_and_confirm(self, records: list[OutboxRecord], deadline: float) -> Outcome:
        """Send and wait until confirmed (sync test): raises TransportError when the deadline passes."""
        outcome = self.send(records)
        while self._sent:
            if time.monotonic() > deadline:
                raise TransportError("no confirmation before the deadline")
            time.sleep(0.05)
            outcome = self.poll()
        return outcome

    def poll(self) -> Outcome:
        if self._sock is None or not self._sent:
            return Outcome()
        self._check_alive(self._sock)
        now = time.monotonic()
        acked = _acked_bytes(self._sock)
        if acked is not None:  # per batch: its last byte is acknowledged once bytes_acked reaches its position
            for entry in self._sent:
                if entry.acked_at is None and entry.position is not None and acked >= entry.position:
                    entry.acked_at = now
        if _unacknowledged_bytes(self._sock) == 0:
            self._stalled_since = None
            for entry in self._sent:
                if entry.acked_at is None:
                    entry.acked_at = now
        elif self._stalled_since is None:
            self._stalled_since = now
        elif now - self._stalled_since > self.timeout:
            # No FIN, no RST, no ACK: a dead path. Reconnect and resend rather than wait for TCP's ~15 min.
            raise TransportError(f"{self.address}:{self.port} stopped acknowledging for {self.timeout:.0f}s")
        outcome = Outcome()
        while self._sent and self._sent[0].acked_at is not None and now - self._sent[0].acked_at >= self.resend_window:
            entry = self._sent.popleft()
            outcome.confirmed = entry.sequence
            outcome.delivered += entry.count
        return outcome

    def unconfirmed(self) -> int:
        return sum(entry.count for entry in self._sent)

    def _check_alive(self, sock: socket.socket) -> None:
        """A syslog receiver never talks back: readable means it closed (FIN), reset (RST) or sent an alert."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError) as error:
            raise TransportError(f"connection to {self.address}:{self.port} lost: {error}") from None
        if not readable:
            return
        try:
            data = sock.recv(4096)
        except ssl.SSLWantReadError:
            return
        except (OSError, ssl.SSLError) as error:
            raise TransportError(f"connection to {self.address}:{self.port} lost: {error}") from None
        if not data:
            raise TransportError(f"{self.address}:{self.port} closed the connection")


_TCPI_BYTES_ACKED = 120  # offset of tcpi_bytes_acked (u64) in Linux's struct tcp_info (kernel >= 4.1)


def _acked_bytes(sock: socket.socket) -> int | None:
    """Bytes of this connection the peer's TCP acknowledged so far (TCP_INFO); None where unknown."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (OSError, AttributeError):
        return None
    if len(info) < _TCPI_BYTES_ACKED + 8:
        return None
    return int(struct.unpack_from("Q", info, _TCPI_BYTES_ACKED)[0])


def _written_bytes(sock: socket.socket) -> int | None:
    """Everything written to the socket so far: acknowledged plus still queued (TLS records included)."""
    acked = _acked_bytes(sock)
    return None if acked is None else acked + _unacknowledged_bytes(sock)


def _unacknowledged_bytes(sock: socket.socket) -> int:
    """Bytes the peer's TCP has not acknowledged yet (SIOCOUTQ); 0 where the platform cannot tell."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except (OSError, AttributeError):
        return 0
    return int(struct.unpack("i", raw)[0])
