"""HEC indexer acknowledgement as an option (`ack`), de-duplication on the record id, and a load balancer's
sticky cookie kept: against the faithful stub (agent/forward/testing/hec_stub.py) over real HTTP."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from tests.agent.forward.conftest import destination, forwarding, store_records, wait_for
from weightwarden.agent.config import ConfigError, load_config
from weightwarden.agent.events import Action, Category, Event, Record
from weightwarden.agent.forward.testing.hec_stub import HecStub
from weightwarden.agent.forward.testing.sticky_balancer import COOKIE, StickyBalancer
from weightwarden.agent.store.outbox import Outbox

TOKEN = "9d1f0e2c-aaaa-4bbb-8ccc-0123456789ab"


def events(count: int) -> list[Record]:
    return [Event(Action.MODEL_MODIFIED, Category.FILE, f"event {n}") for n in range(count)]


def cursor(database: Path) -> int:
    outbox = Outbox(database)
    try:
        return outbox.cursor("splunk")
    finally:
        outbox.close()


def post(url: str, path: str, body: object, **headers: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection(url.removeprefix("http://").split(":")[0], int(url.rsplit(":", 1)[1]),
                                      timeout=5)
    try:
        conn.request("POST", path, body=body if isinstance(body, bytes) else json.dumps(body),
                     headers={"Authorization": f"Splunk {TOKEN}", **headers})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("ack", ["auto", "off"])
def test_an_endpoint_without_acknowledgement_gets_every_record(ack: str, tmp_path: Path) -> None:
    with HecStub(TOKEN, acks=False) as stub:
        assert post(stub.url, "/services/collector/ack", {"acks": [0]}) == (400, {"text": "ACK is disabled",
                                                                                 "code": 14})
        stub.ack_requests = 0
        stored = store_records(tmp_path / "ww.db", events(30))
        with forwarding(destination("splunk", type="hec", url=stub.url, token=TOKEN, ack=ack, batch_size=10),
                        tmp_path / "ww.db") as (_forwarder, emitted):
            wait_for(lambda: cursor(tmp_path / "ww.db") == stored[-1].sequence, timeout=15, what="delivery")
        assert emitted == [] and stub.ack_requests == 0
        assert [e["fields"]["weightwarden_id"] for e in stub.deduplicated()] == [r.id for r in stored]
        assert len(stub.events) == len(stored)


def test_ack_on_refuses_an_endpoint_without_it(tmp_path: Path) -> None:
    with HecStub(TOKEN, acks=False) as stub:
        store_records(tmp_path / "ww.db", events(3))
        dest = destination("splunk", type="hec", url=stub.url, token=TOKEN, ack="on")
        with forwarding(dest, tmp_path / "ww.db") as (_forwarder, emitted):
            wait_for(lambda: emitted, timeout=15, what="a forward-health record")
        assert 'ack = "on" requires it' in emitted[0].message and cursor(tmp_path / "ww.db") == 0


def test_auto_waits_for_acknowledgement_where_the_endpoint_offers_it(tmp_path: Path) -> None:
    with HecStub(TOKEN) as stub:
        stub.withhold_acks = True
        stored = store_records(tmp_path / "ww.db", events(5))
        with forwarding(destination("splunk", type="hec", url=stub.url, token=TOKEN), tmp_path / "ww.db"):
            wait_for(lambda: stub.ack_requests >= 3, timeout=10, what="ack queries")
            assert cursor(tmp_path / "ww.db") == 0  # answered 200 with an ackId, not yet acknowledged
            stub.withhold_acks = False
            wait_for(lambda: cursor(tmp_path / "ww.db") == stored[-1].sequence, timeout=15, what="delivery")


@pytest.mark.parametrize("ack", ["auto", "on"])
def test_acknowledgement_turned_off_while_a_batch_waits_for_it(ack: str, tmp_path: Path) -> None:
    """The ack query answers 400 code 14 "ACK is disabled": auto delivers on, on is a configuration error."""
    with HecStub(TOKEN) as stub:
        stub.withhold_acks = True
        stored = store_records(tmp_path / "ww.db", events(12))
        dest = destination("splunk", type="hec", url=stub.url, token=TOKEN, ack=ack, batch_size=5)
        with forwarding(dest, tmp_path / "ww.db") as (_forwarder, emitted):
            wait_for(lambda: stub.ack_requests >= 2, timeout=10, what="ack queries")
            stub.disable_acks()
            if ack == "auto":
                wait_for(lambda: cursor(tmp_path / "ww.db") == stored[-1].sequence, timeout=15, what="delivery")
            else:
                wait_for(lambda: emitted, timeout=15, what="a forward-health record")
        if ack == "auto":
            assert emitted == []
            assert [e["fields"]["weightwarden_id"] for e in stub.deduplicated()] == [r.id for r in stored]
        else:
            assert "ACK is disabled" in emitted[0].message and cursor(tmp_path / "ww.db") == 0


def test_a_resent_batch_is_indexed_twice_and_counted_once_by_its_record_ids(tmp_path: Path) -> None:
    """HEC de-duplicates nothing: an answer lost after indexing makes the batch go again. Every copy carries
    the record id in fields.weightwarden_id, so the receiver's de-duplicated view has each record once."""
    with HecStub(TOKEN, acks=False) as stub:
        stub.lose_next_answers(2)
        stored = store_records(tmp_path / "ww.db", events(20))
        with forwarding(destination("splunk", type="hec", url=stub.url, token=TOKEN, batch_size=10),
                        tmp_path / "ww.db"):
            wait_for(lambda: cursor(tmp_path / "ww.db") == stored[-1].sequence, timeout=15, what="delivery")
        assert len(stub.events) >= len(stored) + 10  # the first batch indexed three times
        assert [e["fields"]["weightwarden_id"] for e in stub.deduplicated()] == [r.id for r in stored]


def test_the_stub_refuses_to_deduplicate_events_without_the_record_id() -> None:
    with HecStub(TOKEN, acks=False) as stub:
        assert post(stub.url, "/services/collector/event", b'{"event": "x", "fields": {"other": 1}}')[0] == 200
        with pytest.raises(ValueError, match=r"no fields\.weightwarden_id"):
            stub.deduplicated()


def test_the_sticky_cookie_keeps_acknowledgement_on_one_indexer(tmp_path: Path) -> None:
    """Two indexers behind a cookie-sticky balancer: an ackId is only known to the indexer that took the events,
    so without the cookie half of the ack queries would go to the other one and never come true."""
    with HecStub(TOKEN, ack_delay=0.05) as first, HecStub(TOKEN, ack_delay=0.05) as second, \
            StickyBalancer([first.url, second.url]) as balancer:
        stored = store_records(tmp_path / "ww.db", events(50))
        dest = destination("splunk", type="hec", url=balancer.url, token=TOKEN, batch_size=10)
        with forwarding(dest, tmp_path / "ww.db"):
            wait_for(lambda: cursor(tmp_path / "ww.db") == stored[-1].sequence, timeout=20, what="delivery")
        assert balancer.routed == [0] * len(balancer.routed) and len(balancer.routed) >= 10
        assert balancer.with_cookie == len(balancer.routed) - 1  # every request after the first sent it back
        assert first.cookies[1:] == [f"{COOKIE}=0"] * (len(first.cookies) - 1) and second.requests == 0
        assert [e["fields"]["weightwarden_id"] for e in first.deduplicated()] == [r.id for r in stored]


def test_the_ack_key_takes_auto_on_off_only(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[forward.splunk]\ntype = "hec"\nurl = "https://s:8088"\ntoken = "t"\nack = "maybe"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert [(p.line, p.message) for p in caught.value.problems] == [
        (5, "[forward.splunk] ack must be one of 'auto', 'on', 'off', got 'maybe'")]
    config.write_text('[forward.splunk]\ntype = "hec"\nurl = "https://s:8088"\ntoken = "t"\nack = "off"\n')
    assert load_config(config).forward[0].ack == "off"
