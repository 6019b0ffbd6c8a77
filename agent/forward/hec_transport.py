"""Splunk HTTP Event Collector, with indexer acknowledgement when the endpoint offers it.

Each request carries `X-Splunk-Request-Channel` (one UUID per agent run and destination). `ack` decides
what confirms a batch:
- "auto" (the default): an answer with an ackId means the token has indexer acknowledgement on; the batch
  counts as delivered only when `/services/collector/ack` reports that ackId true (Splunk reports each true
  once). An answer without an ackId (acknowledgement off, as on many Splunk Cloud tokens and HEC-compatible
  receivers), or an ack endpoint that says acknowledgement is disabled (400 code 14) or absent (404), means
  the endpoint offers none: from then on a 200 counts as delivered.
- "on": acknowledgement is required; an endpoint without it is a configuration error (records stay queued).
- "off": a 200 counts as delivered; ackIds are never polled.
Without acknowledgement a lost answer makes the batch go again, so the receiver may index a record twice:
every envelope carries the record id as the indexed field `weightwarden_id`, the key to de-duplicate on
(`| dedup weightwarden_id`; docs/forwarding.md). HEC itself de-duplicates nothing.

401/403 are configuration errors (records stay queued, a forward-health record is raised); 400 is a payload
error: the batch is retried one record at a time and the records refused alone go to the dead-letter table;
5xx and 429 are retried with backoff.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping

from weightwarden.agent.forward import hec
from weightwarden.agent.forward.http import AnsweredTransport, HttpClient
from weightwarden.agent.forward.render import Renderer, render_each
from weightwarden.agent.forward.transport import Outcome, TransportError
from weightwarden.agent.store.outbox import OutboxRecord

log = logging.getLogger(__name__)

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
ACK_MODES = ("auto", "on", "off")
ACK_DISABLED_CODE = 14  # HEC's "ACK is disabled"
# 400s about the settings, not the events (7 incorrect index, 10 data channel is missing, 11 invalid data
# channel): every record would be refused alike, so they are configuration errors, never dead letters.
SETTINGS_CODES = (7, 10, 11)


class HecTransport(AnsweredTransport):
    def __init__(self, renderer: Renderer, *, url: str, token: str, index: str = "", timeout: float = 15.0,
                 verify_tls: bool = True, ca_file: str = "", client_cert: str = "", client_key: str = "",
                 server_name: str = "", ack: str = "auto", ack_timeout: float | None = None,
                 ack_poll_seconds: float = 0.05, environ: Mapping[str, str] | None = None,
                 where: Mapping[str, str] | None = None) -> None:
        if ack not in ACK_MODES:
            raise TransportError(f"ack must be one of {', '.join(ACK_MODES)}, not {ack!r}", config=True)
        self.renderer = renderer
        self.client = HttpClient(url, timeout=timeout, verify_tls=verify_tls, ca_file=ca_file,
                                 client_cert=client_cert, client_key=client_key, server_name=server_name,
                                 environ=environ, where=where)
        self.ack = ack
        self.endpoint_acks: bool | None = None  # learnt from the answers (sync status, logs): None until one came
        self._ack_polling_refused = False  # the ack endpoint said acknowledgement is disabled or absent
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
        if status == 400 and _json(body).get("code") in SETTINGS_CODES:
            raise TransportError(f"HEC refused the request: {_reason(status, body)}", config=True)
        if status == 400 and len(rendered) > 1:
            return self._one_by_one(rendered)
        if status == 400:
            return Outcome(confirmed=rendered[0][0].sequence, dead=[(rendered[0][0], _reason(status, body))])
        self._raise_for(status, body)
        delivered = Outcome(confirmed=rendered[-1][0].sequence, delivered=len(rendered))
        if self.ack == "off":
            return delivered
        ack_id = _json(body).get("ackId")
        if ack_id is None:
            self._no_acks("HEC answered without an ackId (indexer acknowledgement is off for this token)")
            return delivered
        if self._ack_polling_refused:
            return delivered
        try:
            ack_number = int(ack_id)
        except (TypeError, ValueError):
            raise TransportError(f"HEC answered an ackId that is not a number: {ack_id!r}") from None
        if self._wait_for_ack(ack_number):
            self.endpoint_acks = True
        return delivered

    def _no_acks(self, why: str) -> None:
        """The endpoint offers no acknowledgement: an error with ack = "on", else a 200 counts from now on."""
        if self.ack == "on":
            raise TransportError(f"{why}, but ack = \"on\" requires it: turn it on for the token, or set ack = "
                                 "\"auto\" to deliver without it", config=True)
        if self.endpoint_acks is not False:
            log.info("HEC %s: %s; a 200 now counts as delivered (duplicates are possible after a lost answer: "
                     "de-duplicate on weightwarden_id)", self.client.origin, why)
        self.endpoint_acks = False

    def _one_by_one(self, rendered: list[tuple[OutboxRecord, bytes]]) -> Outcome:
        outcome = Outcome()
        for pair in rendered:
            single = self._send([pair])
            outcome.dead.extend(single.dead)
            outcome.delivered += single.delivered
            outcome.confirmed = pair[0].sequence
        return outcome

    def _wait_for_ack(self, ack_id: int) -> bool:
        """True once the ackId is reported true; False when the endpoint turns out to offer no ack polling."""
        deadline = time.monotonic() + self.ack_timeout
        while True:
            status, body = self.client.request("POST", ACK_PATH, json.dumps({"acks": [ack_id]}).encode(),
                                               self._headers())
            if status == 404 or (status == 400 and _json(body).get("code") == ACK_DISABLED_CODE):
                self._no_acks(f"HEC answered {_reason(status, body)} to an acknowledgement query")
                self._ack_polling_refused = True
                return False
            self._raise_for(status, body)
            acks = _json(body).get("acks")
            if isinstance(acks, dict) and acks.get(str(ack_id)) is True:
                return True
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
