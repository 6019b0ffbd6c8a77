"""A load balancer with cookie stickiness in front of several HEC stubs, as Splunk Cloud and most on-premise
HEC deployments have (AWS ALB's `AWSALB`, F5's `BIGipServer...`): for tests.

A request without the balancer's cookie (or with an unknown one) goes to the next backend in turn, and the
answer sets `WWLB=<backend>`; a request carrying the cookie goes to that backend. Indexer acknowledgement
only works on such a balancer when the client returns the cookie: an ackId belongs to the channel *on the
indexer that took the events*, and another indexer reports it false forever.
"""

from __future__ import annotations

import threading
from http.cookies import SimpleCookie

from weightwarden.agent.forward.testing.listener import JSON, Listener, QuietHandler, ask_upstream

COOKIE = "WWLB"


class StickyBalancer(Listener):
    def __init__(self, backends: list[str]) -> None:
        self.backends = [backend.removeprefix("http://") for backend in backends]
        self.routed: list[int] = []  # the backend of each request, in order
        self.with_cookie = 0  # requests that carried the balancer's cookie
        self._next = 0
        self._lock = threading.Lock()
        super().__init__(self._handler(), name="sticky-lb")

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

    def _handler(self) -> type[QuietHandler]:
        balancer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                chosen, fresh = balancer._choose(self.headers.get("Cookie"))
                host, _, port = balancer.backends[chosen].partition(":")
                status, data = ask_upstream(host, int(port), "POST", self.path, body, self.headers_to_pass_on())
                cookie = (("Set-Cookie", f"{COOKIE}={chosen}; Path=/; HttpOnly"),) if fresh else ()
                self.answer(status, data, JSON + cookie)

        return Handler
