"""A load balancer with cookie stickiness in front of several HEC stubs, as Splunk Cloud and most on-premise
HEC deployments have (AWS ALB's `AWSALB`, F5's `BIGipServer...`): for tests.

A request without the balancer's cookie (or with an unknown one) goes to the next backend in turn, and the
answer sets `WWLB=<backend>`; a request carrying the cookie goes to that backend. Indexer acknowledgement
only works on such a balancer when the client returns the cookie: an ackId belongs to the channel *on the
indexer that took the events*, and another indexer reports it false forever.
"""

from __future__ import annotations

import http.client
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COOKIE = "WWLB"


class StickyBalancer:
    def __init__(self, backends: list[str]) -> None:
        self.backends = [backend.removeprefix("http://") for backend in backends]
        self.routed: list[int] = []  # the backend of each request, in order
        self.with_cookie = 0  # requests that carried the balancer's cookie
        self._next = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sticky-lb", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StickyBalancer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _choose(self, cookie_header: str | None) -> tuple[int, bool]:
        """The backend for a request, and whether the answer must set the cookie."""
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header or "")
        except Exception:  # a malformed Cookie header counts as none
            cookies = SimpleCookie()
        with self._lock:
            morsel = cookies.get(COOKIE)
            if morsel is not None and morsel.value.isdigit() and int(morsel.value) < len(self.backends):
                self.with_cookie += 1
                chosen, fresh = int(morsel.value), False
            else:
                chosen, fresh = self._next, True
                self._next = (self._next + 1) % len(self.backends)
            self.routed.append(chosen)
        return chosen, fresh

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                chosen, fresh = balancer._choose(self.headers.get("Cookie"))
                host, _, port = balancer.backends[chosen].partition(":")
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    conn.request("POST", self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    status, data = response.status, response.read()
                finally:
                    conn.close()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if fresh:
                    self.send_header("Set-Cookie", f"{COOKIE}={chosen}; Path=/; HttpOnly")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        return Handler
