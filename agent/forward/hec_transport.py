"""Splunk HTTP Event Collector with indexer acknowledgement.

Each request carries `X-Splunk-Request-Channel` (one UUID per agent run and destination) and returns an
ackId; a batch counts as delivered only when `/services/collector/ack` reports its ackId true (Splunk
reports each true once). 401/403 are configuration errors (records stay queued, a forward-health record
is raised); 400 is a payload error: the batch is retried one record at a time and the records refused
alone go to the dead-letter table; 5xx and 429 are retried with backoff.
"""

from __future__ import annotations

import json
import time
import uuid

from weightwarden.agent.forward import hec
from weightwarden.agent.forward.http import AnsweredTransport, HttpClient
from weightwarden.agent.forward.render import Renderer, render_each
from weightwarden.agent.forward.transport import Outcome, TransportError
from weightwarden.agent.store.outbox import OutboxRecord

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"


class HecTransport(AnsweredTransport):
    def __init__(self, renderer: Renderer, *, url: str, token: str, index: str = "", timeout: float = 15.0,
                 verify_tls: bool = True, ca_file: str = "", ack_timeout: float | None = None,
                 ack_poll_seconds: float = 0.05) -> None:
        self.renderer = renderer
        self.client = HttpClient(url, timeout=timeout, verify_tls=verify_tls, ca_file=ca_file)
        self.token = token
        self.index = index
        self.channel = str(uuid.uuid4())
        self.ack_timeout = ack_timeout if ack_timeout is not None else max(30.0, timeout * 4)
        self.ack_poll_seconds = ack_poll_seconds

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Splunk {self.token}", "X-Splunk-Request-Channel": self.channel,
                "Content-Type": "application/json"}

    def envelope(self, record: OutboxRecord) -> bytes:
        """One record's HEC envelope as JSON (a batch is envelopes concatenated)."""
        envelope = hec.envelope(self.renderer.flat(record), self.renderer.document(record), host=self.renderer.host,
                                index=self.index or None)
        return hec.encode(envelope)

    def send(self, records: list[OutboxRecord]) -> Outcome:
        rendered, dead = render_each(records, self.envelope)
        outcome = self._send(rendered) if rendered else Outcome()
        outcome.dead[:0] = dead
        outcome.confirmed = records[-1].sequence
        return outcome

    def _send(self, rendered: list[tuple[OutboxRecord, bytes]]) -> Outcome:
        body_sent = b"".join(envelope for _record, envelope in rendered)
        status, body = self.client.request("POST", EVENT_PATH, body_sent, self._headers())
        if status == 400 and len(rendered) > 1:
            return self._one_by_one(rendered)
        if status == 400:
            return Outcome(confirmed=rendered[0][0].sequence, dead=[(rendered[0][0], _reason(status, body))])
        self._raise_for(status, body)
        ack_id = _json(body).get("ackId")
        if ack_id is None:
            raise TransportError("HEC answered without an ackId: is indexer acknowledgement on for this token?",
                                 config=True)
        self._wait_for_ack(int(ack_id))
        return Outcome(confirmed=rendered[-1][0].sequence, delivered=len(rendered))

    def _one_by_one(self, rendered: list[tuple[OutboxRecord, bytes]]) -> Outcome:
        outcome = Outcome()
        for pair in rendered:
            single = self._send([pair])
            outcome.dead.extend(single.dead)
            outcome.delivered += single.delivered
            outcome.confirmed = pair[0].sequence
        return outcome

    def _wait_for_ack(self, ack_id: int) -> None:
        deadline = time.monotonic() + self.ack_timeout
        while True:
            status, body = self.client.request("POST", ACK_PATH, json.dumps({"acks": [ack_id]}).encode(),
                                               self._headers())
            self._raise_for(status, body)
            if _json(body).get("acks", {}).get(str(ack_id)) is True:
                return
            if time.monotonic() > deadline:
                raise TransportError(f"HEC ackId {ack_id} not acknowledged within {self.ack_timeout:.0f}s; resending")
            time.sleep(self.ack_poll_seconds)

    def _raise_for(self, status: int, body: bytes) -> None:
        if status == 200:
            return
        if status in (401, 403):
            raise TransportError(f"HEC refused the token: {_reason(status, body)}", config=True)
        raise TransportError(f"HEC {_reason(status, body)}")



def _json(body: bytes) -> dict:  # type: ignore[type-arg]
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _reason(status: int, body: bytes) -> str:
    data = _json(body)
    text = data.get("text") or body[:200].decode("utf-8", "replace")
    return f"{status}: {text}" + (f" (code {data['code']})" if "code" in data else "")
