"""Splunk HEC with indexer acknowledgement, against the faithful stub shipped in the package."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.forward.conftest import destination, forwarding, hostile_records, store_records, wait_for
from weightwarden.agent.events import Action, Category, Event
from weightwarden.agent.forward.testing.hec_stub import HecStub
from weightwarden.agent.store.outbox import Outbox

TOKEN = "5c1f2d3e-aaaa-bbbb-cccc-0123456789ab"


@pytest.fixture
def stub() -> Iterator[HecStub]:
    with HecStub(TOKEN) as running:
        yield running


def hec(stub: HecStub, **values: object) -> object:
    return destination("splunk", type="hec", url=stub.url, token=TOKEN, **values)


def cursor(database: Path) -> int:
    outbox = Outbox(database)
    try:
        return outbox.cursor("splunk")
    finally:
        outbox.close()


def test_envelopes_round_trip_and_count_only_when_acknowledged(stub: HecStub, tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, hostile_records())
    stub.withhold_acks = True
    with forwarding(hec(stub, index="security"), database):
        wait_for(lambda: stub.requests >= 1, timeout=10, what="the first HEC request")
        time.sleep(0.3)  # acks withheld: whatever the forwarder does meanwhile, nothing counts as delivered
        assert cursor(database) == 0 and stub.events == []
        stub.withhold_acks = False
        wait_for(lambda: cursor(database) == stored[-1].sequence, timeout=10, what="the acknowledged cursor")
    by_id = {item["fields"]["weightwarden_id"]: item for item in stub.events}
    for record in stored:
        item = by_id[record.id]
        chain = item["event"].pop("chain")  # the record's place in the hash chain (verify --from)
        assert set(chain) == {"hash", "previous"} and len(chain["hash"]) == 64
        assert item["event"] == {"kind": record.kind, "host": "ww-test-host",
                                 **json.loads(json.dumps(record.to_dict()))}
        assert item["fields"] == {"weightwarden_id": record.id, "weightwarden_sequence": record.sequence,
                                  "weightwarden_kind": record.kind}
        assert item["time"] == round(record.time.timestamp(), 3) and item["host"] == "ww-test-host"
        assert item["sourcetype"] == f"weightwarden:{record.kind}" and item["index"] == "security"


def test_busy_indexers_are_retried(stub: HecStub, tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, [Event(Action.MODEL_MODIFIED, Category.FILE, f"e{n}") for n in range(50)])
    stub.fail_next(3)  # 503 "Server is busy"
    with forwarding(hec(stub, batch_size=10), database):
        wait_for(lambda: cursor(database) == stored[-1].sequence, timeout=15, what="every batch acknowledged")
    assert [item["fields"]["weightwarden_sequence"] for item in stub.events] == [r.sequence for r in stored]


def test_wrong_token_keeps_records_and_raises_forward_health(stub: HecStub, tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    store_records(database, hostile_records()[:2])
    dest = destination("splunk", type="hec", url=stub.url, token="not-the-token")
    with forwarding(dest, database) as (forwarder, emitted):
        wait_for(lambda: emitted, timeout=10, what="a forward-health record")
        assert forwarder.errors >= 1
    assert "403" in emitted[0].message and "Invalid token" in emitted[0].message
    assert cursor(database) == 0 and stub.events == []


def test_refused_event_is_dead_lettered_and_the_rest_delivered(stub: HecStub, tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    records = [Event(Action.MODEL_MODIFIED, Category.FILE, "poison" if n == 3 else f"e{n}") for n in range(6)]
    stored = store_records(database, records)
    stub.refuse = lambda item: item["event"].get("message") == "poison"
    with forwarding(hec(stub), database):
        wait_for(lambda: cursor(database) == stored[-1].sequence, timeout=15, what="the cursor at the end")
    outbox = Outbox(database)
    try:
        dead = outbox.dead_letters("splunk")
    finally:
        outbox.close()
    assert [d["record_id"] for d in dead] == [stored[3].id] and dead[0]["reason"].startswith("400")
    assert sorted(item["fields"]["weightwarden_sequence"] for item in stub.events) == \
        [r.sequence for r in stored if r.sequence != stored[3].sequence]


def test_stub_speaks_the_protocol(stub: HecStub) -> None:
    """The double itself: missing token 401, missing channel 400 code 10, one-shot true acks."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(stub.url.rsplit(":", 1)[1]), timeout=5)

    def post(path: str, body: object, **headers: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())

    try:
        assert post("/services/collector/event", {"event": "x"})[0] == 401
        status, answer = post("/services/collector/event", {"event": "x"}, Authorization=f"Splunk {TOKEN}")
        assert (status, answer["code"]) == (400, 10)
        auth = {"Authorization": f"Splunk {TOKEN}", "X-Splunk-Request-Channel": "c-1"}
        assert post("/services/collector/event", {"event": "x"}, **auth) == (
            200, {"text": "Success", "code": 0, "ackId": 0})
        assert post("/services/collector/ack", {"acks": [0]}, **auth) == (200, {"acks": {"0": True}})
        assert post("/services/collector/ack", {"acks": [0]}, **auth) == (200, {"acks": {"0": False}})
        assert post("/services/collector/event", {"nope": 1}, **auth)[1]["code"] == 12
    finally:
        conn.close()
