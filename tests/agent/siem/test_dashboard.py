"""siem/dashboards/weightwarden.ndjson: saved objects whose references resolve, whose fields the template maps
with an aggregatable type, and whose queries and aggregations run on osmem-server over the real documents."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from tests.agent.siem.conftest import Loaded
from tests.agent.siem.corpus import INDEX, SIEM
from tests.agent.siem.test_template import mapping_of

OBJECTS = [json.loads(line) for line in (SIEM / "dashboards" / "weightwarden.ndjson").read_text().splitlines()]
AGGREGATABLE = {"keyword", "long", "date", "ip", "boolean"}


def _visualizations() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for obj in OBJECTS:
        if obj["type"] == "visualization":
            state = json.loads(obj["attributes"]["visState"])
            source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            found.append((obj["id"], source["query"]["query"], state))
    return found


def test_the_shipped_file_is_the_generators_output() -> None:
    namespace: dict[str, Any] = {}
    exec(compile((SIEM / "dashboards" / "make_dashboard.py").read_text(), "make_dashboard.py", "exec"), namespace)
    assert (SIEM / "dashboards" / "weightwarden.ndjson").read_text() == namespace["ndjson"](), (
        "run: python3 siem/dashboards/make_dashboard.py > siem/dashboards/weightwarden.ndjson")


def test_references_resolve_and_the_dashboard_holds_every_visualization() -> None:
    known = {(obj["type"], obj["id"]) for obj in OBJECTS}
    for obj in OBJECTS:
        for reference in obj["references"]:
            assert (reference["type"], reference["id"]) in known, (obj["id"], reference)
    (dashboard,) = [obj for obj in OBJECTS if obj["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {r["name"] for r in dashboard["references"]}
    assert {p["panelRefName"] for p in panels} == names
    assert len(panels) == len(_visualizations()) + 1  # and the alerts search
    (pattern,) = [obj for obj in OBJECTS if obj["type"] == "index-pattern"]
    assert pattern["attributes"]["title"] == "logs-weightwarden.*"


def test_every_field_used_is_mapped_and_aggregatable() -> None:
    for vid, _query, state in _visualizations():
        for agg in state["aggs"]:
            field = agg["params"].get("field")
            if field:
                assert (mapping_of(field)[0] or {}).get("type") in AGGREGATABLE, (vid, field)
    (search,) = [obj for obj in OBJECTS if obj["type"] == "search"]
    for column in search["attributes"]["columns"]:
        assert mapping_of(column)[0] is not None, column


def _run(loaded: Loaded, query: str, state: dict[str, Any]) -> dict[str, Any]:
    """The visualization as one OpenSearch request: its query, its bucket aggregations nested in order, its
    metric in the innermost bucket."""
    metric = next(a for a in state["aggs"] if a["schema"] == "metric")
    buckets = [a for a in state["aggs"] if a["schema"] != "metric"]
    inner: dict[str, Any] = {}
    if metric["type"] != "count":
        inner = {"m": {metric["type"]: {"field": metric["params"]["field"]}}}
    for agg in reversed(buckets):
        params = agg["params"]
        if agg["type"] == "terms":
            order = {"_count": params["order"]} if params["orderBy"] == "1" and metric["type"] == "count" else (
                {"m": params["order"]})
            body: dict[str, Any] = {"terms": {"field": params["field"], "size": params["size"], "order": order}}
        else:
            body = {"date_histogram": {"field": params["field"], "fixed_interval": "1h"}}
        inner = {f"b{agg['id']}": {**body, **({"aggs": inner} if inner else {})}}
    return loaded.cluster.call(f"/{INDEX}/_search", "POST", {
        "size": 0, "query": {"query_string": {"query": query}}, "aggs": inner})["aggregations"]


def test_every_visualization_runs_over_the_real_documents(loaded: Loaded) -> None:
    for vid, query, state in _visualizations():
        answer = _run(loaded, query, state)
        (top,) = answer.values()
        assert top["buckets"], vid


def test_last_heartbeat_per_host_is_each_hosts_latest(loaded: Loaded) -> None:
    _vid, query, state = next(v for v in _visualizations() if v[0] == "weightwarden-last-heartbeat")
    (top,) = _run(loaded, query, state).values()
    found = {b["key"]: b["m"]["value_as_string"] for b in top["buckets"]}
    expected: dict[str, str] = defaultdict(str)
    for doc in loaded.documents.values():
        if doc["event"]["action"] == "heartbeat":
            expected[doc["host"]["name"]] = max(expected[doc["host"]["name"]], doc["@timestamp"])
    assert found == dict(expected) and len(found) == 6
    times = [b["m"]["value"] for b in top["buckets"]]
    assert times == sorted(times)  # oldest first: the silent agents on top
