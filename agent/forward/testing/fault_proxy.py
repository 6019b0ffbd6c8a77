"""A small fault-injecting HTTP proxy for `_bulk` tests: 429s, per-item 429s and dropped connections.

osmem-server (like a healthy cluster) never answers 429; real clusters do under load. The proxy forwards
requests to the upstream and, on demand:
- `reject_next(n, status)`: answers the next n requests itself with `status` (429 or 5xx), upstream untouched;
- `item_429(n)`: for the next n `_bulk` items, takes them out of the request before forwarding and reports
  them back as 429 in the right places, as an overloaded cluster would (they were never indexed);
- `drop_next(n, after_upstream=True)`: forwards the request (so the upstream indexed it), then closes the
  connection without an answer: the client must resend, and its resend answers 409.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from typing import Any

from weightwarden.agent.forward.testing.listener import JSON, Listener, QuietHandler, ask_upstream


class FaultProxy(Listener):
    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self._lock = threading.Lock()
        self._reject: list[int] = []
        self._items_429 = 0
        self._drops: list[bool] = []
        self.stats = {"requests": 0, "rejected": 0, "items_429": 0, "dropped": 0}
        super().__init__(self._handler(), name="fault-proxy")

    def reject_next(self, count: int, status: int = 429) -> None:
        with self._lock:
            self._reject.extend([status] * count)

    def item_429(self, count: int) -> None:
        with self._lock:
            self._items_429 += count

    def drop_next(self, count: int, *, after_upstream: bool = True) -> None:
        with self._lock:
            self._drops.extend([after_upstream] * count)

    def _upstream(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        return ask_upstream(self.upstream_host, self.upstream_port, method, path, body, headers)

    def handle(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        with self._lock:
            self.stats["requests"] += 1
            if self._reject:
                self.stats["rejected"] += 1
                status = self._reject.pop(0)
                return status, json.dumps({"error": {"type": "es_rejected_execution_exception"},
                                           "status": status}).encode()
            fail_items = self._items_429 if path.split("?")[0].endswith("/_bulk") else 0
            drop = self._drops.pop(0) if self._drops and not fail_items else None
        if fail_items:
            return self._bulk_with_429(path, body, headers, fail_items)
        if drop is not None:
            self.stats["dropped"] += 1
            if drop:
                self._upstream(method, path, body, headers)
            return None
        return self._upstream(method, path, body, headers)

    def _bulk_with_429(self, path: str, body: bytes, headers: dict[str, str], budget: int) -> tuple[int, bytes]:
        lines = body.decode("utf-8").splitlines()
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
        failed = set(range(0, len(pairs), 2)[:budget])  # every other item, as a loaded cluster would
        with self._lock:
            self._items_429 = max(0, self._items_429 - len(failed))
            self.stats["items_429"] += len(failed)
        kept = [pair for index, pair in enumerate(pairs) if index not in failed]
        answers: list[Any] = []
        if kept:
            data = ("\n".join(line for pair in kept for line in pair) + "\n").encode()
            status, raw = self._upstream("POST", path, data, headers)
            if status != 200:
                return status, raw
            answers = json.loads(raw)["items"]
        items, upstream = [], iter(answers)
        for index, (action, _doc) in enumerate(pairs):
            if index in failed:
                op, meta = next(iter(json.loads(action).items()))
                items.append({op: {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": 429,
                                   "error": {"type": "es_rejected_execution_exception",
                                             "reason": "rejected execution (queue capacity reached)"}}})
            else:
                items.append(next(upstream))
        return 200, json.dumps({"took": 1, "errors": True, "items": items}).encode()

    def _handler(self) -> type[QuietHandler]:
        proxy = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                answer = proxy.handle(self.command, self.path, self.read_body(), self.headers_to_pass_on())
                if answer is None:  # drop: no answer at all
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.answer(*answer, JSON)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        return Handler
