"""Elasticsearch / OpenSearch `_bulk` with `create` and `_id` = record id.

The response is 200 even when items fail, so each item is read: 201 indexed and 409 "already there"
both count as delivered (a resend after a crash is harmless); 429 and 5xx items are retried, alone, a
few times with backoff, after which the attempt fails and the whole batch is resent later (its delivered
items then answer 409); any other 4xx (400 mapping or parse errors) goes to the dead-letter table.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any

from weightwarden.agent.forward.http import AnsweredTransport, HttpClient
from weightwarden.agent.forward.render import Renderer, render_each
from weightwarden.agent.forward.text import json_bytes
from weightwarden.agent.forward.transport import Outcome, TransportError, backoff_seconds
from weightwarden.agent.store.outbox import OutboxRecord


class BulkTransport(AnsweredTransport):
    def __init__(self, renderer: Renderer, *, url: str, index: str, username: str = "", password: str = "",
                 api_key: str = "", timeout: float = 15.0, verify_tls: bool = True, ca_file: str = "",
                 client_cert: str = "", client_key: str = "", server_name: str = "", item_retries: int = 4,
                 item_retry_seconds: float = 0.2, environ: Mapping[str, str] | None = None,
                 where: Mapping[str, str] | None = None) -> None:
        self.renderer = renderer
        self.client = HttpClient(url, timeout=timeout, verify_tls=verify_tls, ca_file=ca_file,
                                 client_cert=client_cert, client_key=client_key, server_name=server_name,
                                 environ=environ, where=where)
        self.index = index  # destinations.py fills in the default (destination_types.BULK_INDEX)
        self.headers = {"Content-Type": "application/x-ndjson"}
        if api_key:
            self.headers["Authorization"] = f"ApiKey {api_key}"
        elif username:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self.headers["Authorization"] = f"Basic {token}"
        self.item_retries = item_retries
        self.item_retry_seconds = item_retry_seconds

    def item(self, record: OutboxRecord) -> bytes:
        """One record's two NDJSON lines: the action and the document."""
        action = json_bytes({"create": {"_index": self.index, "_id": record.id}})
        return action + b"\n" + json_bytes(self.renderer.document(record)) + b"\n"

    def send(self, records: list[OutboxRecord]) -> Outcome:
        pending, dead = render_each(records, self.item)
        outcome = Outcome(confirmed=records[-1].sequence, dead=dead)
        for attempt in range(self.item_retries + 1):
            if not pending:
                return outcome
            retry = self._attempt(pending, outcome)
            if not retry:
                return outcome
            if attempt < self.item_retries:
                time.sleep(backoff_seconds(attempt, self.item_retry_seconds, 5.0))
            pending = retry
        raise TransportError(f"_bulk: {len(pending)} items still refused with 429/5xx after "
                             f"{self.item_retries + 1} attempts")

    def _attempt(self, pending: list[tuple[OutboxRecord, bytes]],
                 outcome: Outcome) -> list[tuple[OutboxRecord, bytes]]:
        status, body = self.client.request("POST", "/_bulk", b"".join(item for _record, item in pending),
                                           self.headers)
        if status in (401, 403):
            raise TransportError(f"_bulk refused the credentials: {status}", config=True)
        if status == 429 or status >= 500:
            return pending
        if status != 200:
            raise TransportError(f"_bulk answered {status}: {body[:200].decode('utf-8', 'replace')}")
        try:
            items: list[dict[str, Any]] = json.loads(body)["items"]
        except (ValueError, KeyError, TypeError):
            raise TransportError("_bulk answered 200 without an items list") from None
        if len(items) != len(pending):
            raise TransportError(f"_bulk answered {len(items)} items for {len(pending)} sent")
        retry = []
        for (record, sent), item in zip(pending, items, strict=True):
            result: dict[str, Any] = next(iter(item.values()), {})
            code = int(result.get("status", 0))
            if code in (200, 201, 409):
                outcome.delivered += 1
            elif code == 429 or code >= 500:
                retry.append((record, sent))
            else:
                outcome.dead.append((record, f"{code}: {json.dumps(result.get('error'))[:500]}"))
        return retry

