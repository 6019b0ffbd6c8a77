"""A small HTTP forward proxy, as enterprise networks put between an agent and its SIEM: for tests.

- `CONNECT host:port` (RFC 9110 §9.3.6) opens a TCP tunnel to the target and answers 200; from then on the
  bytes are relayed both ways untouched (TLS stays end to end). Each tunnel and its target is counted.
- A request in absolute form (`POST http://host:port/path`) is forwarded to that origin and its answer
  relayed back (plain-HTTP destinations); counted too.
- `hosts` maps names to addresses the proxy connects to: a name the client cannot resolve itself (under
  `.test`, RFC 6761) is still reachable through the proxy, as an intranet name only the proxy resolves.
- `credentials` ("user:password") makes the proxy demand `Proxy-Authorization: Basic` (407 otherwise).
- `tls` (a server context) makes it an https:// proxy: the client speaks TLS to the proxy, and through a
  tunnel TLS again to the target (TLS in TLS).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import select
import socket
import ssl
import threading
import urllib.parse

from weightwarden.agent.forward.testing.listener import Listener, QuietHandler

_NOT_RELAYED = ("connection", "content-length", "transfer-encoding", "keep-alive")  # hop-by-hop, or set anew


class ForwardProxy(Listener):
    def __init__(self, *, hosts: dict[str, str] | None = None, credentials: str = "",
                 host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.hosts = dict(hosts or {})
        self.credentials = credentials
        self.tunnels: list[str] = []  # host:port of each CONNECT tunnel opened
        self.forwarded: list[str] = []  # the absolute URL of each plain request forwarded
        self.refused: list[str] = []  # requests answered 407
        self._lock = threading.Lock()
        super().__init__(self._handler(), name="forward-proxy", host=host, https=tls is not None)

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.tunnels) + len(self.forwarded)

    def _address(self, host: str, port: int) -> tuple[str, int]:
        return self.hosts.get(host, host), port

    def _authorized(self, header: str | None) -> bool:
        if not self.credentials:
            return True
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode("ascii")
        return header == expected

    def _handler(self) -> type[QuietHandler]:
        proxy = self

        class Handler(QuietHandler):
            def setup(self) -> None:
                if proxy.tls is not None:
                    self.request.settimeout(10)
                    self.request = proxy.tls.wrap_socket(self.request, server_side=True)
                    self.request.settimeout(None)
                super().setup()

            def _refuse_unauthorized(self) -> bool:
                if proxy._authorized(self.headers.get("Proxy-Authorization")):
                    return False
                with proxy._lock:
                    proxy.refused.append(self.path)
                self.send_response(407)
                self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True

            def do_CONNECT(self) -> None:
                if self._refuse_unauthorized():
                    return
                host, _, port = self.path.rpartition(":")
                host = host.strip("[]")
                try:
                    upstream = socket.create_connection(proxy._address(host, int(port)), timeout=10)
                except (OSError, ValueError):
                    self.send_error(502, "cannot reach the target")
                    return
                with proxy._lock:
                    proxy.tunnels.append(self.path)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                upstream.settimeout(None)
                relay(self.connection, upstream)
                self.close_connection = True

            def _forward(self) -> None:
                if self._refuse_unauthorized():
                    return
                parts = urllib.parse.urlsplit(self.path)
                if parts.scheme != "http" or not parts.hostname:
                    self.send_error(400, "absolute http:// URL expected")
                    return
                body = self.read_body()
                with proxy._lock:
                    proxy.forwarded.append(self.path)
                address = proxy._address(parts.hostname, parts.port or 80)
                conn = http.client.HTTPConnection(*address, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("proxy-authorization", "proxy-connection", "connection",
                                                "content-length")}
                try:
                    conn.request(self.command, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                                 headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    answer_headers = response.getheaders()
                    status = response.status
                except OSError:
                    self.send_error(502, "the target did not answer")
                    return
                finally:
                    conn.close()
                self.answer(status, data, [(name, value) for name, value in answer_headers
                                           if name.lower() not in _NOT_RELAYED])

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward

        return Handler


def relay(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until either side closes; then close both (a server closing `one` again is harmless)."""
    sockets = [one, other]
    try:
        while True:
            readable, _, broken = select.select(sockets, [], sockets, 60)
            if broken or not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                while isinstance(source, ssl.SSLSocket) and source.pending():  # decrypted, invisible to select
                    data += source.recv(source.pending())
                (other if source is one else one).sendall(data)
    except OSError:
        return
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
