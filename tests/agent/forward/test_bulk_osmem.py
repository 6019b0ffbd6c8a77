"""`_bulk` into osmem-server (an in-memory OpenSearch-compatible server), through a fault-injecting proxy."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.agent.forward.conftest import destination, forwarding, hostile_records, store_records, wait_for
from weightwarden.agent.events import Action, Alert, Category, Event, Record
from weightwarden.agent.forward.testing.fault_proxy import FaultProxy
from weightwarden.agent.store.outbox import Outbox

pytest.importorskip("osmem_server", reason="osmem-server is in the test extra")


def call(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def documents(url: str, index: str = "weightwarden-events") -> dict[str, dict[str, Any]]:
    try:
        call(f"{url}/{index}/_refresh", "POST")
        hits = call(f"{url}/{index}/_search", "POST", {"query": {"match_all": {}}, "size": 10000})["hits"]["hits"]
    except urllib.error.HTTPError:
        return {}
    return {hit["_id"]: hit["_source"] for hit in hits}


def many(count: int) -> list[Record]:
    return [Event(Action.MODEL_MODIFIED, Category.FILE, f"event {n}") for n in range(count)]


def test_bulk_ecs_documents_round_trip(cluster: str, tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, hostile_records())
    with forwarding(destination("es", type="bulk", url=cluster), database):
        docs = wait_for(lambda: len(documents(cluster)) == len(stored) and documents(cluster), timeout=20,
                        what="every record indexed")
    for record in stored:
        doc = docs[record.id]
        assert doc["event"]["id"] == record.id and doc["event"]["sequence"] == record.sequence
        assert doc["event"]["kind"] == record.kind and doc["@timestamp"] == record.to_dict()["time"]
        assert doc["message"] == record.message and doc["host"]["name"] == "ww-test-host"
        if record.process is not None:
            assert doc["process"]["command_line"] == record.process.command_line
            assert doc["process"]["name"] == record.process.name and doc["user"]["name"] == record.process.user
        if isinstance(record, Alert):
            assert doc["rule"]["id"] == record.rule_id and doc["file"]["path"] == record.paths[-1]
            assert doc["destination"] == {"address": "10.0.0.5", "ip": "10.0.0.5", "port": 22}
            assert "intrusion_detection" in doc["event"]["category"]
        elif record.file is not None:
            assert doc["file"]["path"] == record.file.path
            if record.file.sha256:
                assert doc["file"]["hash"]["sha256"] == record.file.sha256


def test_429_items_dropped_connections_and_5xx_are_retried_until_delivered(cluster: str, tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, many(300))
    with FaultProxy(cluster) as proxy:
        proxy.item_429(40)  # items refused inside 200 answers: only those are resent
        proxy.reject_next(2, 429)  # whole requests refused
        proxy.reject_next(1, 503)
        proxy.drop_next(2)  # indexed upstream, answer lost: the resend answers 409, counted as delivered
        dest = destination("es", type="bulk", url=proxy.url, batch_size=50)
        with forwarding(dest, database):
            outbox = Outbox(database)
            try:
                wait_for(lambda: outbox.cursor("es") == stored[-1].sequence, timeout=30, what="the cursor at the end")
                state = outbox.state("es")
            finally:
                outbox.close()
        assert proxy.stats["items_429"] == 40 and proxy.stats["rejected"] == 3 and proxy.stats["dropped"] == 2
    docs = documents(cluster)
    assert sorted(doc["event"]["sequence"] for doc in docs.values()) == [r.sequence for r in stored]
    assert state is not None and state.dead_total == 0 and state.backlog == 0
    assert state.delivered_total >= len(stored)  # 409s after the dropped answers count as delivered too


def test_400_items_go_to_the_dead_letter_table_and_the_rest_is_delivered(cluster: str, tmp_path: Path) -> None:
    # A mapping the ECS documents break: `weightwarden.model` as a number, so string models are refused (400).
    call(f"{cluster}/weightwarden-events", "PUT",
         {"mappings": {"properties": {"weightwarden": {"properties": {"model": {"type": "long"}}}}}})
    database = tmp_path / "ww.db"
    records = many(5)
    records.insert(2, Event(Action.MODEL_CREATED, Category.FILE, "bad for this mapping", model="llama-7b"))
    stored = store_records(database, records)
    with forwarding(destination("es", type="bulk", url=cluster), database):
        outbox = Outbox(database)
        try:
            wait_for(lambda: outbox.cursor("es") == stored[-1].sequence, timeout=20, what="the cursor at the end")
            dead = outbox.dead_letters("es")
        finally:
            outbox.close()
    assert [d["record_id"] for d in dead] == [stored[2].id] and dead[0]["reason"].startswith("400")
    assert set(documents(cluster)) == {r.id for r in stored} - {stored[2].id}
