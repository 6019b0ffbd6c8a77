"""The real agent with three real receivers on 127.0.0.1 (a JSON-lines file, the HEC stub, osmem-server's
`_bulk`), for the adversarial forwarding tests: start, read what each receiver got, stop cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.agent.cli.helpers import WEIGHTWARDEN
from tests.waiting import wait_for
from weightwarden.agent.forward.testing.hec_stub import HecStub

TOKEN = "6d2e3f40-aaaa-bbbb-cccc-0123456789ab"
INDEX = "ww-adversarial"


@dataclass(frozen=True)
class Seen:
    """One record as a receiver has it, read the way its format says (OCSF, native JSON or ECS)."""

    id: str
    action: str
    file_name: str | None
    details: dict[str, Any]


def from_ocsf(doc: dict[str, Any]) -> Seen:
    file = doc.get("file") or (doc.get("evidences") or [{}])[0].get("file") or {}  # an alert's: its evidence's
    return Seen(doc["metadata"]["uid"], doc["metadata"]["event_code"], file.get("name"), doc["unmapped"]["details"])


def from_native(doc: dict[str, Any]) -> Seen:
    path = (doc.get("file") or {}).get("path")
    return Seen(doc["id"], doc.get("event", {}).get("action", doc.get("rule")), path and path.rsplit("/", 1)[-1],
                doc.get("details") or doc.get("evidence") or {})


def from_ecs(doc: dict[str, Any]) -> Seen:
    return Seen(doc["event"]["id"], doc["event"]["action"], (doc.get("file") or {}).get("name"),
                doc["weightwarden"].get("details", doc["weightwarden"].get("evidence")))


@dataclass
class Receivers:
    jsonl: Path
    hec: HecStub
    bulk_url: str

    def file_records(self) -> list[Seen]:
        """Every complete line of the OCSF JSON-lines file, split on LF only (what a shipper does)."""
        if not self.jsonl.exists():
            return []
        data = self.jsonl.read_bytes()
        return [from_ocsf(json.loads(line.decode("utf-8"))) for line in data.split(b"\n")[:-1] if line.strip()]

    def hec_records(self) -> list[Seen]:
        return [from_native(item["event"]) for item in list(self.hec.events)]

    def bulk_records(self) -> list[Seen]:
        try:
            _call(f"{self.bulk_url}/{INDEX}/_refresh", "POST")
            found = _call(f"{self.bulk_url}/{INDEX}/_search", "POST", {"query": {"match_all": {}}, "size": 10000})
        except urllib.error.HTTPError:
            return []
        return [from_ecs(hit["_source"]) for hit in found["hits"]["hits"]]

    def everywhere(self) -> tuple[list[Seen], list[Seen], list[Seen]]:
        return self.file_records(), self.hec_records(), self.bulk_records()

    def config(self) -> str:
        return f"""
[forward.jsonl]
type = "file"
path = "{self.jsonl}"
format = "ocsf"
retry_initial_seconds = 0.1
retry_max_seconds = 0.5

[forward.splunk]
type = "hec"
url = "{self.hec.url}"
token = "{TOKEN}"
format = "native"
retry_initial_seconds = 0.1
retry_max_seconds = 0.5

[forward.elastic]
type = "bulk"
url = "{self.bulk_url}"
index = "{INDEX}"
format = "ecs"
retry_initial_seconds = 0.1
retry_max_seconds = 0.5
"""


def _call(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


@contextlib.contextmanager
def receivers(workdir: Path, osmem: Any) -> Iterator[Receivers]:
    clone = osmem.clone()
    try:
        with HecStub(TOKEN) as hec:
            yield Receivers(workdir / "siem" / "ecs.jsonl", hec, clone.url)
    finally:
        clone.close()


def agent_config(path: Path, *, data_dir: Path, watched: Path, forward: str) -> Path:
    path.write_text(f"""[agent]
data_dir = "{data_dir}"
heartbeat_seconds = 3600

[inventory]
roots = []

[watch]
roots = ["{watched}"]
settle_seconds = 0.2

[store]
flush_seconds = 0.05

[sensors]
file_marks = false
network = false
mounts = false
{forward}""")
    return path


def stored_actions(database: Path) -> list[str]:
    if not database.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
            return [row[0] for row in db.execute("select json_extract(record, '$.event.action') from events")]
    except sqlite3.OperationalError:  # the agent has not created its tables yet
        return []


@contextlib.contextmanager
def running_agent(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The agent as a subprocess, yielded once it watches (its first scan finished: files written from then
    on are seen)."""
    database = Path(tomllib.loads(config.read_text())["agent"]["data_dir"]) / "weightwarden.db"
    scans = stored_actions(database).count("scan-finished")  # a restarted agent has earlier ones
    with log.open("ab") as output:
        agent = subprocess.Popen([WEIGHTWARDEN, "agent", "--config", str(config)], stdout=subprocess.DEVNULL,
                                 stderr=output, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        wait_for(lambda: stored_actions(database).count("scan-finished") > scans or agent.poll() is not None,
                 timeout=120,
                 what="the agent's first scan")
        assert agent.poll() is None, log.read_text()[-3000:]
        yield agent
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=60)
            except subprocess.TimeoutExpired:
                agent.send_signal(signal.SIGABRT)
                agent.wait(timeout=30)
