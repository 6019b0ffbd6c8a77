"""An osmem-server (OpenSearch-compatible, in memory) per module, loaded with the real ECS corpus (corpus.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.siem.corpus import Case, Cluster, agent_records, document, fixture_cases
from weightwarden.agent.events import Record

pytest.importorskip("osmem_server", reason="osmem-server is in the test extra")


@dataclass
class Loaded:
    cluster: Cluster
    cases: list[Case]
    records: dict[str, tuple[Record, str]]  # document id (the record id) -> (record, host)
    documents: dict[str, dict[str, Any]]  # document id -> the ECS document sent


@pytest.fixture(scope="module")
def loaded(osmem: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """The shipped template installed, then every fixture event and alert and the agents' own records indexed
    through it, each case's on its own host."""
    clone = osmem.clone()
    try:
        cluster = Cluster(clone.url)
        cluster.install_template()
        cases = fixture_cases(Path(tmp_path_factory.mktemp("cases")))
        records: dict[str, tuple[Record, str]] = {}
        for number, case in enumerate(cases):
            for record in [*case.events, *case.alerts, *(agent_records(number) if number < 6 else [])]:
                records[record.id] = (record, case.host)
        documents = {rid: document(record, host) for rid, (record, host) in records.items()}
        cluster.bulk(list(documents.items()))
        yield Loaded(cluster, cases, records, documents)
    finally:
        clone.close()
