"""The shipped index template (siem/elastic) maps every field the agent's ECS documents carry with the right
type, and osmem-server indexes the real documents through it with exactly those types."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.agent.forward.conftest import hostile_records
from tests.agent.siem.conftest import Loaded
from tests.agent.siem.corpus import INDEX, SIEM, document
from weightwarden.agent.siem.ecs_fields import ECS_TYPES, INDEXED_DETAILS

COMPONENT = json.loads((SIEM / "elastic" / "component-template.json").read_text())
MAPPINGS = COMPONENT["template"]["mappings"]
# Which mapping types take a JSON value of each kind.
TAKES = {str: {"keyword", "text", "wildcard", "match_only_text", "date", "ip"}, bool: {"boolean"},
         int: {"long", "integer", "short", "unsigned_long", "float", "double", "scaled_float", "date"},
         float: {"float", "double", "scaled_float", "half_float"}}
# ECS fields the ECS output is gaining (issue 18 item 1): the template maps them already.
COMING = {"destination.ip": "ip", "destination.address": "keyword", "destination.port": "long",
          "destination.bytes": "long", "destination.domain": "keyword", "source.ip": "ip",
          "source.address": "keyword", "source.port": "long", "source.bytes": "long",
          "network.direction": "keyword", "network.transport": "keyword", "network.protocol": "keyword",
          "network.bytes": "long", "threat.framework": "keyword", "threat.technique.id": "keyword",
          "threat.technique.name": "keyword", "threat.technique.reference": "keyword",
          "threat.technique.subtechnique.id": "keyword", "threat.tactic.id": "keyword",
          "threat.tactic.name": "keyword", "event.type": "keyword", "event.category": "keyword",
          "event.outcome": "keyword", "file.directory": "keyword", "process.parent.name": "keyword"}


def mapping_of(path: str, mappings: dict[str, Any] = MAPPINGS) -> tuple[dict[str, Any] | None, bool]:
    """(the field's mapping, False), or (None, True) when it lies under an object that does not index new keys."""
    node: dict[str, Any] = mappings
    for part in path.split("."):
        properties = node.get("properties", {})
        if part not in properties:
            return None, node.get("dynamic") in (False, "false")
        node = properties[part]
    return node, False


def leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, prefix)
    elif value is not None:
        yield prefix, value


def sent(loaded_documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return loaded_documents + [document(record, "ws-hostile") for record in hostile_records()]


def test_every_field_sent_has_a_mapping_of_its_type(loaded: Loaded) -> None:
    documents = sent(list(loaded.documents.values()))
    assert len(documents) > 200
    wrong: dict[str, str] = {}
    unmapped: set[str] = set()
    seen: set[str] = set()
    for doc in documents:
        for path, value in leaves(doc):
            mapping, kept_only = mapping_of(path)
            if kept_only:
                continue  # under weightwarden.details: kept in _source, not indexed
            seen.add(path)
            if mapping is None or "type" not in mapping:
                unmapped.add(path)
                continue
            kind = mapping["type"]
            if kind not in TAKES[type(value)] or (kind == "ip" and not _is_ip(value)):
                wrong[path] = f"{type(value).__name__} {value!r} into {kind}"
    assert unmapped == set()
    assert wrong == {}
    # the corpus reached the fields the rules and the dashboard use
    assert {"event.action", "process.name", "file.hash.sha256", "user.name", "rule.id", "threat.technique.id",
            "weightwarden.atlas", "destination.ip", "source.bytes"} <= seen


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def test_the_template_maps_the_fields_the_ecs_output_is_gaining() -> None:
    assert {path: (mapping_of(path)[0] or {}).get("type") for path in COMING} == COMING


def test_the_sigma_field_table_matches_the_template() -> None:
    """agent/siem/ecs_fields.py (what the exported rules search) and the template agree on every type."""
    assert {path: (mapping_of(path)[0] or {}).get("type") for path in ECS_TYPES} == ECS_TYPES
    details = MAPPINGS["properties"]["weightwarden"]["properties"]["details"]
    assert details["dynamic"] is False and set(details["properties"]) == set(INDEXED_DETAILS)


def test_osmem_indexes_the_real_documents_through_the_template(loaded: Loaded) -> None:
    answer = loaded.cluster.call(f"/{INDEX}/_mapping")
    (index,) = answer.values()
    live = index["mappings"]
    for path, kind in {**ECS_TYPES, **COMING}.items():
        assert (mapping_of(path, live)[0] or {}).get("type") == kind, path
    details = live["properties"]["weightwarden"]["properties"]["details"]
    assert set(details["properties"]) == set(INDEXED_DETAILS), "weightwarden.details grew dynamic fields"
    count = loaded.cluster.call(f"/{INDEX}/_count")["count"]
    assert count == len(loaded.documents)


def test_hostile_documents_index_through_the_template(loaded: Loaded) -> None:
    """Pipes, =, backslashes, newlines, quotes, non-ASCII and a 20,000-character message: all 201."""
    docs = [(f"hostile-{n}", document(record, "ws-hostile")) for n, record in enumerate(hostile_records())]
    loaded.cluster.bulk(docs, index="logs-weightwarden.hostile-test")
    assert loaded.cluster.search('host.name:"ws-hostile"', index="logs-weightwarden.hostile-test") == {
        doc_id for doc_id, _ in docs}


def test_the_index_template_is_a_data_stream_over_the_component(tmp_path: Path) -> None:
    template = json.loads((SIEM / "elastic" / "index-template.json").read_text())
    assert template["index_patterns"] == ["logs-weightwarden.*"] and template["data_stream"] == {}
    assert template["composed_of"] == ["weightwarden-ecs-mappings"]
    assert template["template"]["settings"]["index"]["default_pipeline"] == "weightwarden-ecs"
    assert template["priority"] > 100  # above the stack's built-in logs-*-* template
    pipeline = json.loads((SIEM / "elastic" / "ingest-pipeline.json").read_text())
    assert [next(iter(p)) for p in pipeline["processors"]] == ["set", "set"]
