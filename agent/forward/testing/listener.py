"""What every HTTP test double here shares: a local listener served by one thread, and a quiet handler.

`Listener` binds a ThreadingHTTPServer to a free port (one daemon thread per connection), serves it from
its own thread between `start()` (or `with`) and `close()`, and waits a bounded time for that thread when
closing, so a stuck double cannot hang a test run. A double subclasses it, sets up its own state, then
calls `super().__init__` with the handler class that speaks its protocol.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

JOIN_SECONDS = 10  # how long close() waits for the serving thread


class Listener:
    def __init__(self, handler: type[BaseHTTPRequestHandler], *, name: str, host: str = "127.0.0.1",
                 https: bool = False) -> None:
        self._https = https
        self._server = ThreadingHTTPServer((host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self._https else 'http'}://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=JOIN_SECONDS)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive, as the forwarders use it), no access log on stderr, one way to answer; a
    connection a double's setup() wrapped in TLS is closed when done."""

    protocol_version = "HTTP/1.1"

    def finish(self) -> None:
        super().finish()
        # A double's setup() wrapped the connection in TLS: the server closes only the socket it accepted.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.close()

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def headers_to_pass_on(self) -> dict[str, str]:
        """The request's headers as a proxy sends them on (Host and Content-Length are the new request's)."""
        return {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}

    def answer(self, status: int, data: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer `status` with body `data`: `headers`, then Content-Length."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


JSON = (("Content-Type", "application/json"),)


def ask_upstream(host: str, port: int, method: str, path: str, body: bytes, headers: dict[str, str]
                 ) -> tuple[int, bytes]:
    """One request to the double's upstream on a connection of its own: the status and body answered."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
