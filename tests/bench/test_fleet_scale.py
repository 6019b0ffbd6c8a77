"""bench/fleet_scale.py at a small size: simulated agents' real signed, chained logs replayed over `_bulk` into
osmem-server (OpenSearch-compatible, the shipped mappings); `weightwarden verify --from` accepts each host as
delivered, and refuses a host whose documents were changed in the store, or checked with another host's key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.fleet_scale import INDEX, replay, run, simulate_fleet, verify_host
from bench.fleet_view import install_template
from tests.agent.forward.test_bulk_osmem import call

pytest.importorskip("osmem_server", reason="osmem-server is in the test extra")


def hits(cluster: str, query: dict[str, Any], size: int = 100) -> list[dict[str, Any]]:
    call(f"{cluster}/{INDEX}/_refresh", "POST")
    return list(call(f"{cluster}/{INDEX}/_search", "POST", {"query": query, "size": size})["hits"]["hits"])


def test_the_bench_runs_at_a_small_size(tmp_path: Path) -> None:
    """The bench's own entry: its server, its fleet, every host it verifies accepted, figures measured."""
    scale = run(3, 12, verify_hosts=3, paint_runs=0, work=tmp_path, batch=10, checkpoint_every=5, alert_every=4,
                progress=lambda _text: None)
    assert scale.ingest.documents == 3 * (1 + 12 + 12 // 5 + 1)  # started, records, checkpoints, stopped
    assert scale.ingest.requests >= 3 * 2 and scale.ingest.rate > 0 and scale.rss_mb > 0
    assert len(scale.verify_seconds) == 3 and scale.verified_records == 1 + 12 + 2 + 1


def test_verify_accepts_each_simulated_host_and_refuses_a_tampered_one(cluster: str, tmp_path: Path) -> None:
    install_template(cluster)
    fleet = simulate_fleet(tmp_path, 4, 30, checkpoint_every=10, alert_every=6)
    assert len({agent.host for agent in fleet}) == 4
    assert len({agent.public_key.read_text() for agent in fleet}) == 4  # a key of its own each
    ingest, sent = replay(fleet, cluster, batch=16)
    assert ingest.documents == sum(agent.last for agent in fleet) and sent > 0
    for agent in fleet:
        assert len(hits(cluster, {"term": {"host.name": agent.host}}, 1000)) == agent.last
        code, report = verify_host(cluster, agent)
        assert (code, report["ok"], report["records"]) == (0, True, agent.last), report
        # three periodic checkpoints and the clean stop's signature, all by this agent's key
        assert report["signatures_valid"] == report["signatures_checked"] == 4 and report["clean_stop"]
        assert report["other_hosts"] == 0 and report["missing"] == 0
    kinds = {hit["_source"]["event"]["kind"] for hit in hits(cluster, {"match_all": {}}, 1000)}
    assert kinds == {"event", "alert"}  # the engine's alerts are among the records

    # Another host's key: the signatures of this one do not verify with it.
    first, second, third = fleet[0], fleet[1], fleet[2]
    code, report = verify_host(cluster, type(first)(first.host, first.database, second.public_key, first.last))
    assert code == 1 and {f["problem"] for f in report["findings"]} == {"signature"}

    # Someone with write access to the index edits one of second's records: that host is refused, at it.
    [hit] = hits(cluster, {"bool": {"filter": [{"term": {"host.name": second.host}},
                                               {"term": {"event.sequence": 7}}]}})
    doc = hit["_source"]
    doc["file"]["path"] = "/tmp/innocent.txt"
    call(f"{cluster}/{INDEX}/_doc/{hit['_id']}", "PUT", doc)
    # ... and deletes one of third's.
    [hit] = hits(cluster, {"bool": {"filter": [{"term": {"host.name": third.host}},
                                               {"term": {"event.sequence": 12}}]}})
    call(f"{cluster}/{INDEX}/_doc/{hit['_id']}", "DELETE")
    code, report = verify_host(cluster, second)
    assert code == 1 and [(f["problem"], f["sequence"]) for f in report["findings"]] == [("altered", 7)]
    code, report = verify_host(cluster, third)
    assert code == 1 and [(f["problem"], f["sequence"]) for f in report["findings"]] == [("missing", 12)]
    code, report = verify_host(cluster, fleet[3])  # the other hosts' edits leave this one alone
    assert (code, report["ok"]) == (0, True)
