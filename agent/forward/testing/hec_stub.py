"""A faithful Splunk HTTP Event Collector stub, for tests and benchmarks (no Splunk installs here).

What it models (Splunk docs, "HTTP Event Collector REST API" and "About HEC indexer acknowledgment"):
- `POST /services/collector/event` with `Authorization: Splunk <token>`: 401 code 2 without a token,
  403 code 4 for a wrong one; with acknowledgement on, `X-Splunk-Request-Channel` is required (400 code 10).
- The body is JSON objects concatenated; each needs `event` (400 code 12 "Event field is required",
  with `invalid-event-number`); unparsable JSON is 400 code 6 "Invalid data format". A refused request
  indexes nothing.
- Success answers `{"text": "Success", "code": 0, "ackId": N}`, ackIds counting from 0 per channel.
- `POST /services/collector/ack` `{"acks": [ids]}` answers `{"acks": {"id": bool}}`; an id turns true
  once its events are indexed (after `ack_delay`), and each true is reported once, then forgotten.
- Indexer acknowledgement off for the token (`acks=False`, as on many Splunk Cloud tokens): success answers
  `{"text": "Success", "code": 0}` without an ackId and the events are indexed at once; the channel header
  is optional; `/services/collector/ack` answers 400 code 14 "ACK is disabled".
- HEC de-duplicates nothing: a batch sent twice is indexed twice. `deduplicated()` is what a search that
  de-duplicates on the record id (`| dedup weightwarden_id`) shows, and fails on an indexed event that does
  not carry `fields.weightwarden_id`, the key the agent puts on every envelope for that.
- Faults on demand: the next N requests answer 503 code 9 "Server is busy" (or any status), acks are
  withheld (an indexer that lost the data: the client must resend), events matching a predicate are
  refused as 400 code 6 (a payload the indexer cannot take), or the next N event requests are taken (and,
  without acknowledgement, indexed) and their answer is lost (the connection closes without one).
- HTTPS (`tls=` a server context; a context that requires client certificates refuses clients without one),
  bound to any local address (`host=`); the TLS names clients asked for (SNI), the connections and the
  requests each carried (keep-alive), and the Cookie header of every request are recorded.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from weightwarden.agent.forward.testing.listener import JSON, Listener, QuietHandler


class HecStub(Listener):
    def __init__(self, token: str = "00000000-0000-0000-0000-000000000000", *, ack_delay: float = 0.0,
                 acks: bool = True, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.token = token
        self.ack_delay = ack_delay
        self.acks = acks
        self.events: list[dict[str, Any]] = []  # indexed (acknowledged) envelopes, in order
        self.requests = 0
        self.ack_requests = 0
        self.withhold_acks = False
        self.refuse: Callable[[dict[str, Any]], bool] | None = None
        self.connections: list[int] = []  # per connection accepted, the requests it carried
        self.tls_refused: list[str] = []  # why each failed TLS handshake failed
        self.server_names: list[str | None] = []  # the SNI name of each TLS handshake
        self.cookies: list[str | None] = []  # the Cookie header of each request
        self._lock = threading.Lock()
        self._faults: list[tuple[int, dict[str, Any]]] = []
        self._lose_answers = 0
        self._channels: dict[str, dict[str, Any]] = {}
        self._tls = tls
        if tls is not None:
            tls.sni_callback = self._sni
        super().__init__(self._handler(), name="hec-stub", host=host, https=tls is not None)

    def _sni(self, _sock: object, name: str | None, _context: object) -> None:
        with self._lock:
            self.server_names.append(name)

    def deduplicated(self) -> list[dict[str, Any]]:
        """The indexed events once per `fields.weightwarden_id`, first copy kept, in index order: what a search
        de-duplicating on the record id shows. ValueError for an event without that field."""
        seen: set[str] = set()
        unique = []
        with self._lock:
            events = list(self.events)
        for number, item in enumerate(events):
            fields = item.get("fields")
            key = fields.get("weightwarden_id") if isinstance(fields, dict) else None
            if not isinstance(key, str) or not key:
                raise ValueError(f"indexed event {number} carries no fields.weightwarden_id to de-duplicate on: "
                                 f"{json.dumps(item)[:200]}")
            if key not in seen:
                seen.add(key)
                unique.append(item)
        return unique

    def disable_acks(self) -> None:
        """An admin turns indexer acknowledgement off for the token: what was taken stays indexed, ack queries
        answer 400 code 14 from now on, and new answers carry no ackId."""
        with self._lock:
            self.acks = False
            for state in self._channels.values():
                for _ready, events in state["pending"].values():
                    self.events.extend(events)
                state["pending"].clear()

    def lose_next_answers(self, count: int) -> None:
        """The next `count` event requests are handled as usual, then the connection closes without an answer."""
        with self._lock:
            self._lose_answers += count

    def fail_next(self, count: int, status: int = 503, text: str = "Server is busy", code: int = 9) -> None:
        with self._lock:
            self._faults.extend([(status, {"text": text, "code": code})] * count)

    # ------------------------------------------------------------------ protocol

    def _auth(self, header: str | None) -> tuple[int, dict[str, Any]] | None:
        if not header:
            return 401, {"text": "Token is required", "code": 2}
        if header != f"Splunk {self.token}":
            return 403, {"text": "Invalid token", "code": 4}
        return None

    def handle_event(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        refused = self._auth(headers.get("Authorization"))
        if refused:
            return refused
        with self._lock:
            self.requests += 1
            if self._faults:
                return self._faults.pop(0)
        channel = headers.get("X-Splunk-Request-Channel")
        if not channel and self.acks:
            return 400, {"text": "Data channel is missing", "code": 10}
        events, problem = _parse(body)
        if problem:
            return 400, problem
        bad = [i for i, item in enumerate(events) if self.refuse is not None and self.refuse(item)]
        if bad:
            return 400, {"text": "Invalid data format", "code": 6, "invalid-event-number": bad[0]}
        if not self.acks:
            with self._lock:
                self.events.extend(events)
            return 200, {"text": "Success", "code": 0}
        with self._lock:
            state = self._channels.setdefault(channel, {"next": 0, "pending": {}})
            ack_id = state["next"]
            state["next"] += 1
            state["pending"][ack_id] = (time.monotonic() + self.ack_delay, events)
        return 200, {"text": "Success", "code": 0, "ackId": ack_id}

    def handle_ack(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        refused = self._auth(headers.get("Authorization"))
        if refused:
            return refused
        with self._lock:
            self.ack_requests += 1
        if not self.acks:
            return 400, {"text": "ACK is disabled", "code": 14}
        channel = headers.get("X-Splunk-Request-Channel")
        if not channel:
            return 400, {"text": "Data channel is missing", "code": 10}
        try:
            wanted = [int(a) for a in json.loads(body)["acks"]]
        except (ValueError, KeyError, TypeError):
            return 400, {"text": "Invalid data format", "code": 6}
        answer: dict[str, bool] = {}
        now = time.monotonic()
        with self._lock:
            pending = self._channels.get(channel, {"pending": {}})["pending"]
            for ack_id in wanted:
                entry = pending.get(ack_id)
                ready = entry is not None and entry[0] <= now and not self.withhold_acks
                if ready:
                    self.events.extend(pending.pop(ack_id)[1])  # indexed; true is reported once
                answer[str(ack_id)] = ready
        return 200, {"acks": answer}

    def _handler(self) -> type[QuietHandler]:
        stub = self

        class Handler(QuietHandler):
            def setup(self) -> None:
                if stub._tls is not None:
                    self.request.settimeout(10)
                    wrapped = stub._tls.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
                    try:
                        wrapped.do_handshake()
                    except (OSError, ssl.SSLError) as error:
                        with stub._lock:
                            stub.tls_refused.append(str(error))
                        close_after_alert(wrapped)
                        self.request = _Closed()
                    else:
                        wrapped.settimeout(None)
                        self.request = wrapped
                with stub._lock:
                    self.number = len(stub.connections)
                    if not isinstance(self.request, _Closed):
                        stub.connections.append(0)
                super().setup()

            def do_POST(self) -> None:
                body = self.read_body()
                path = self.path.split("?", 1)[0]
                with stub._lock:
                    stub.connections[self.number] += 1
                    stub.cookies.append(self.headers.get("Cookie"))
                if path in ("/services/collector/event", "/services/collector/event/1.0", "/services/collector"):
                    status, answer = stub.handle_event(self.headers, body)
                    with stub._lock:
                        lose, stub._lose_answers = stub._lose_answers > 0, max(0, stub._lose_answers - 1)
                    if lose:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                elif path == "/services/collector/ack":
                    status, answer = stub.handle_ack(self.headers, body)
                else:
                    status, answer = 404, {"text": "The requested URL was not found on this server.", "code": 404}
                self.answer(status, json.dumps(answer).encode(), JSON)

        return Handler


def close_after_alert(sock: ssl.SSLSocket) -> None:
    """Close a connection whose handshake failed so that the client reads the alert: a FIN after it, and what
    the client sent meanwhile read and dropped (closing with unread data sends a RST, which can make the
    client's kernel discard the alert before the client reads it). Servers linger the same way."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        while sock.recv(65536):
            pass
    sock.close()


class _Closed:
    """Stands for a connection whose TLS handshake failed: reads nothing, takes every write."""

    def makefile(self, *_args: object, **_kwargs: object) -> Any:
        import io

        return io.BytesIO()

    def sendall(self, _data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def shutdown(self, _how: int) -> None:
        pass


def _parse(body: bytes) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    decoder = json.JSONDecoder()
    text = body.decode("utf-8", "replace")
    events: list[dict[str, Any]] = []
    index = 0
    while True:
        while index < len(text) and text[index] in " \t\r\n":
            index += 1
        if index >= len(text):
            break
        try:
            item, index = decoder.raw_decode(text, index)
        except ValueError:
            return [], {"text": "Invalid data format", "code": 6, "invalid-event-number": len(events)}
        if not isinstance(item, dict) or "event" not in item or item["event"] in ("", None):
            return [], {"text": "Event field is required", "code": 12, "invalid-event-number": len(events)}
        events.append(item)
    if not events:
        return [], {"text": "No data", "code": 5}
    return events, None
