"""Real ECS documents for the SIEM content tests: the rule fixtures' events (tests/agent/detect/fixtures) run
through the real engine, each case on its own host, rendered by the agent's own ECS renderer; plus the
agent's own records (start, heartbeats, checkpoints, scans) and its alerts. An OpenSearch-compatible server
(osmem-server) to load them into, with the shipped template (siem/elastic) installed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.agent.detect.fixture_cases import cases, detect_settings, rules_of
from weightwarden.agent.detect.copy import CopyCandidate
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.replay import START, LineageStep, event_from
from weightwarden.agent.events import Action, Alert, Category, Event, FileInfo, ProcessInfo, Record
from weightwarden.agent.forward import ecs
from weightwarden.agent.forward.fields import flatten

REPO = Path(__file__).resolve().parents[3]
SIEM = REPO / "siem"
INDEX = "logs-weightwarden.records-test"


@dataclass
class Case:
    host: str
    name: str
    events: list[Event] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


def document(record: Record, host: str) -> dict[str, Any]:
    """What the agent forwards for a record with format = "ecs" (agent/forward/render.py's path)."""
    return ecs.document(flatten(record.kind, record.to_dict()), host)


def fixture_cases(workdir: Path) -> list[Case]:
    """Every fixture case's events through the real engine (as test_fixtures.py runs them), with its alerts."""
    found = []
    for number, (name, raw) in enumerate(cases()):
        case = Case(f"ws-{number:03d}", name)
        canaries = raw.get("canaries", [])
        hashes = raw.get("exe_sha256", {})
        tools = raw.get("tool_sha256", {})
        folder = workdir / f"case{number}"
        folder.mkdir()
        engine = DetectionEngine(rules_of(raw, folder), detect_settings(raw.get("settings", {}), folder),
                                 canaries=lambda c=canaries: c, exe_sha256=hashes.get, tool_hashes=lambda t=tools: t)
        for item in map(event_from, raw["events"]):
            if isinstance(item, LineageStep | CopyCandidate):
                continue  # not events: the flow ledger's and the copy matcher's inputs
            case.events.append(item)
            case.alerts.extend(engine.process(item))
        found.append(case)
    return found


def agent_records(host_number: int) -> list[Event]:
    """The records every agent sends besides what it sees: start, heartbeats, checkpoints, a scan, a mount."""
    base = START + timedelta(minutes=host_number)
    process = ProcessInfo(pid=1000 + host_number, name="weightwarden", executable="/opt/weightwarden/bin/python3",
                          user="root", uid=0)
    records = [Event(Action.AGENT_STARTED, Category.HOST, "agent started", time=base, process=process,
                     details={"mode": "system", "coverage": "full", "version": "0.1.0"})]
    records += [Event(Action.HEARTBEAT, Category.HOST, "heartbeat", time=base + timedelta(seconds=60 * n),
                      details={"coverage": "full", "backlog": n}) for n in range(1, 4)]
    records.append(Event(Action.CHAIN_CHECKPOINT, Category.HOST, "checkpoint", time=base + timedelta(seconds=300),
                         details={"head": "ab" * 32, "signature": "cd" * 32, "key_id": "k1", "sequence": 7}))
    records.append(Event(Action.MODEL_DISCOVERED, Category.FILE, "model found", time=base,
                         file=FileInfo(path="/home/ana/models/llama/model.safetensors", size=4096,
                                       format="safetensors", sha256="e3" * 32, quick_fingerprint="q" * 32),
                         model="llama"))
    records.append(Event(Action.MODEL_CREATED, Category.FILE, "a model of this host only", time=base,
                         file=FileInfo(path=f"/home/ana/models/own{host_number}.safetensors", size=2048,
                                       sha256=f"{host_number:02d}" * 32), model=f"own{host_number}"))
    records.append(Event(Action.MOUNT_ADDED, Category.HOST, "mount", time=base,
                         details={"mount_point": "/media/usb", "fstype": "vfat", "source": "/dev/sdb1",
                                  "kind": "removable"}))
    records.append(Event(Action.SCAN_ERROR, Category.FILE, "cannot read", time=base,
                         file=FileInfo(path="/home/ana/x.bin"), details={"error": "permission denied"}))
    return records


class Cluster:
    """One osmem-server clone: an OpenSearch-compatible `_bulk`, `_search`, templates."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, path: str, method: str = "GET", body: Any = None, ndjson: bytes | None = None) -> Any:
        data = ndjson if ndjson is not None else (None if body is None else json.dumps(body).encode())
        kind = "application/x-ndjson" if ndjson is not None else "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": kind})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read().decode()[:500]}") from None

    def install_template(self) -> None:
        """The shipped component and index templates; osmem has no data streams nor ingest pipelines, so the
        index template goes in without `data_stream` and `default_pipeline` (the mappings are the same)."""
        component = json.loads((SIEM / "elastic" / "component-template.json").read_text())
        template = json.loads((SIEM / "elastic" / "index-template.json").read_text())
        self.call("/_component_template/weightwarden-ecs-mappings", "PUT", component)
        del template["data_stream"]
        template["template"]["settings"]["index"].pop("default_pipeline")
        self.call("/_index_template/logs-weightwarden", "PUT", template)

    def bulk(self, documents: list[tuple[str, dict[str, Any]]], index: str = INDEX) -> None:
        lines = []
        for doc_id, doc in documents:
            lines.append(json.dumps({"create": {"_index": index, "_id": doc_id}}))
            lines.append(json.dumps(doc))
        answer = self.call("/_bulk?refresh=true", "POST", ndjson=("\n".join(lines) + "\n").encode())
        failed = [item["create"] for item in answer["items"] if item["create"]["status"] != 201]
        assert failed == [], failed[:3]

    def search(self, query: str, index: str = INDEX) -> set[str]:
        """The ids of every document a Lucene query string matches."""
        found = self.call(f"/{index}/_search", "POST", {"query": {"query_string": {"query": query}},
                                                       "size": 10000, "_source": False})
        return {hit["_id"] for hit in found["hits"]["hits"]}


def ids(records: Iterator[Record] | list[Record]) -> set[str]:
    return {record.id for record in records}
