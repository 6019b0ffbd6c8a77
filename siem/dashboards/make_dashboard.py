"""Writes weightwarden.ndjson, the fleet dashboard's saved objects (OpenSearch Dashboards and Kibana import
format): `python3 siem/dashboards/make_dashboard.py > siem/dashboards/weightwarden.ndjson`.

The objects are data; this script only keeps their JSON-in-JSON (visState, searchSourceJSON, panelsJSON)
consistent. tests/agent/siem/test_dashboard.py checks that the shipped file is its output, and runs each
visualization's query and aggregations over real documents.
"""

from __future__ import annotations

import json
import sys
from typing import Any

INDEX_PATTERN = "weightwarden-logs"
_INDEX_REF = [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": INDEX_PATTERN}]
_COUNT = {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}


def _source(query: str) -> dict[str, str]:
    return {"searchSourceJSON": json.dumps({"query": {"query": query, "language": "lucene"}, "filter": [],
                                            "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"})}


def _terms(field: str, *, order: str = "desc", size: int = 50, schema: str = "bucket",
           id_: str = "2") -> dict[str, Any]:
    return {"id": id_, "enabled": True, "type": "terms", "schema": schema,
            "params": {"field": field, "size": size, "order": order, "orderBy": "1", "otherBucket": False,
                       "missingBucket": False}}


def _metric(kind: str, field: str) -> dict[str, Any]:
    return {"id": "1", "enabled": True, "type": kind, "schema": "metric", "params": {"field": field}}


_TABLE = {"perPage": 20, "showPartialRows": False, "showMetricsAtAllLevels": False, "showTotal": False,
          "totalFunc": "sum", "percentageCol": ""}
_PIE = {"type": "pie", "addTooltip": True, "addLegend": True, "legendPosition": "right", "isDonut": True}
_HISTOGRAM = {
    "type": "histogram", "addTooltip": True, "addLegend": True, "legendPosition": "right", "times": [],
    "addTimeMarker": False, "grid": {"categoryLines": False},
    "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "bottom", "show": True,
                      "scale": {"type": "linear"}, "labels": {"show": True, "filter": True, "truncate": 100},
                      "title": {}}],
    "valueAxes": [{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value", "position": "left", "show": True,
                   "scale": {"type": "linear", "mode": "normal"},
                   "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                   "title": {"text": "Alerts"}}],
    "seriesParams": [{"show": True, "type": "histogram", "mode": "stacked", "data": {"label": "Alerts", "id": "1"},
                      "valueAxis": "ValueAxis-1", "drawLinesBetweenPoints": True, "showCircles": True}],
}

# (id, title, Lucene query, visualization type, its params, its aggregations)
VISUALIZATIONS: list[tuple[str, str, str, str, dict[str, Any], list[dict[str, Any]]]] = [
    ("weightwarden-alerts-over-time", "Weightwarden: alerts over time by rule", "event.kind:alert", "histogram",
     _HISTOGRAM, [_COUNT, {"id": "2", "enabled": True, "type": "date_histogram", "schema": "segment",
                           "params": {"field": "@timestamp", "useNormalizedEsInterval": True, "interval": "auto",
                                      "drop_partials": False, "min_doc_count": 1, "extended_bounds": {}}},
                  _terms("rule.id", size=20, schema="group", id_="3")]),
    ("weightwarden-alerts-by-host", "Weightwarden: alerts by host", "event.kind:alert", "table", _TABLE,
     [_COUNT, _terms("host.name")]),
    ("weightwarden-alerts-by-severity", "Weightwarden: alerts by severity", "event.kind:alert", "pie", _PIE,
     [_COUNT, _terms("event.severity", size=11)]),
    ("weightwarden-last-heartbeat", "Weightwarden: last heartbeat per host (oldest first: silent agents)",
     "event.action:heartbeat", "table", _TABLE, [_metric("max", "@timestamp"), _terms("host.name", order="asc",
                                                                                   size=500)]),
    ("weightwarden-last-checkpoint", "Weightwarden: last chain checkpoint per host (oldest first)",
     'event.action:("chain-checkpoint" OR "agent-stopped")', "table", _TABLE,
     [_metric("max", "@timestamp"), _terms("host.name", order="asc", size=500)]),
    ("weightwarden-model-prints-hosts", "Weightwarden: model files (SHA-256) by number of hosts",
     "event.kind:event AND _exists_:file.hash.sha256", "table", _TABLE,
     [_metric("cardinality", "host.name"), _terms("file.hash.sha256", size=100)]),
    ("weightwarden-user-alert-hosts", "Weightwarden: users by number of hosts with alerts",
     "event.kind:alert AND _exists_:user.name", "table", _TABLE,
     [_metric("cardinality", "host.name"), _terms("user.name", size=100)]),
]


def objects() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        {"type": "index-pattern", "id": INDEX_PATTERN,
         "attributes": {"title": "logs-weightwarden.*", "timeFieldName": "@timestamp"}, "references": []},
        {"type": "search", "id": "weightwarden-alerts", "references": _INDEX_REF, "attributes": {
            "title": "Weightwarden alerts", "description": "Every alert the agents raised, newest first",
            "columns": ["host.name", "rule.id", "event.severity", "user.name", "weightwarden.model", "message"],
            "sort": [["@timestamp", "desc"]], "kibanaSavedObjectMeta": _source("event.kind:alert")}},
    ]
    panels, references = [], []
    for number, (vid, title, query, kind, params, aggs) in enumerate(VISUALIZATIONS):
        found.append({"type": "visualization", "id": vid, "references": _INDEX_REF, "attributes": {
            "title": title, "description": "", "version": 1, "uiStateJSON": "{}",
            "visState": json.dumps({"title": title, "type": kind, "params": params, "aggs": aggs}),
            "kibanaSavedObjectMeta": _source(query)}})
        panels.append({"panelIndex": str(number + 1), "embeddableConfig": {}, "panelRefName": f"panel_{number}",
                       "gridData": {"x": number % 2 * 24, "y": number // 2 * 15, "w": 24, "h": 15,
                                    "i": str(number + 1)}})
        references.append({"name": f"panel_{number}", "type": "visualization", "id": vid})
    last = len(VISUALIZATIONS)
    panels.append({"panelIndex": str(last + 1), "embeddableConfig": {}, "panelRefName": f"panel_{last}",
                   "gridData": {"x": 0, "y": (last + 1) // 2 * 15, "w": 48, "h": 20, "i": str(last + 1)}})
    references.append({"name": f"panel_{last}", "type": "search", "id": "weightwarden-alerts"})
    found.append({"type": "dashboard", "id": "weightwarden-fleet", "references": references, "attributes": {
        "title": "Weightwarden fleet",
        "description": "Alerts, hosts, silent agents, missing checkpoints, models and users seen on several hosts "
                       "(docs/siem.md)",
        "panelsJSON": json.dumps(panels), "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
        "timeRestore": False, "version": 1,
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "lucene"},
                                                                   "filter": []})}}})
    return found


def ndjson() -> str:
    return "".join(json.dumps(obj, separators=(",", ":")) + "\n" for obj in objects())


if __name__ == "__main__":
    sys.stdout.write(ndjson())
