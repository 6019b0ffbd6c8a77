"""The fleet's alerts in the central OpenSearch/Elasticsearch index: queries and their answers, no Qt.

Every host's agent forwards its records as ECS documents (agent/forward/ecs.py); alerts are the documents
with `event.kind: alert`. The index is expected to carry the shipped mappings (siem/elastic), where
host.name, rule.id and event.id are keywords: they are what the list sorts and filters on.

Paging is by keyset: a page is the `size` documents after the last one's sort values (`search_after`), the
sort ending in `event.id` so every position is unique. No request ever asks for a `from` beyond 0, so the
millionth alert costs what the first does. Counts come from `track_total_hits`, the host and rule lists
and the overview's numbers from aggregations (`size: 0`).

Runs in a worker thread (gui/central_source.py); the HTTP client is the forwarders' own
(agent/forward/http.py: proxies from the environment, CA file, client certificate, server_name).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from weightwarden.agent.events import format_time
from weightwarden.agent.forward.http import HttpClient
from weightwarden.agent.forward.transport import TransportError
from weightwarden.agent.store.review_queries import AlertFilter, AlertRow

DEFAULT_INDEX = "logs-weightwarden.*"  # the shipped index template's pattern (siem/elastic)
# Sortable columns in the fleet list -> the indexed field; event.id breaks ties so search_after is exact.
SORT_FIELDS = {"time": "@timestamp", "severity": "event.severity", "rule": "rule.id", "host": "host.name"}
TIEBREAK = "event.id"
HOSTS_LISTED = 1000  # the host filter's choices: the busiest hosts first
RULES_LISTED = 200


class CentralError(Exception):
    """Why the central store did not answer; `kind` is one of unreachable, unauthorized, missing, failed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class FleetFilter:
    """The local list's filter (AlertFilter; its statuses do not apply: the centre has no review status)
    and one host, or all of them."""

    alerts: AlertFilter = field(default_factory=AlertFilter)
    host: str = ""


@dataclass(frozen=True)
class FleetAlert:
    """One alert of the fleet: the row the shared views show, the host it came from, and its sort values."""

    row: AlertRow
    host: str
    sort: tuple[Any, ...]


@dataclass(frozen=True)
class FleetPage:
    alerts: list[FleetAlert]
    total: int
    exact: bool  # False when the store only says "at least total"


@dataclass(frozen=True)
class FleetOverview:
    day: int
    day_high: int
    hosts: int
    per_day: list[tuple[str, int, int]]  # (YYYY-MM-DD, alerts, severity 7 and up)
    top_rules: list[tuple[str, int]]
    top_hosts: list[tuple[str, int]]


class CentralStore:
    """Queries against one index pattern of one cluster. Not thread-safe: one worker thread uses it."""

    def __init__(self, url: str, *, index: str = DEFAULT_INDEX, username: str = "", password: str = "",
                 ca_file: str = "", client_cert: str = "", client_key: str = "", server_name: str = "",
                 verify_tls: bool = True, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.index = index or DEFAULT_INDEX
        self.requests: list[dict[str, Any]] = []  # the search bodies sent, newest last (tests, bench)
        self.timings: list[tuple[float, float, float]] = []  # (sent, answered, parsed) perf_counter, per search
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if username or password:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        try:
            self._client = HttpClient(self.url, timeout=timeout, verify_tls=verify_tls, ca_file=ca_file,
                                      client_cert=client_cert, client_key=client_key, server_name=server_name)
        except TransportError as error:
            raise CentralError("failed", str(error)) from None

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ requests

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        del self.requests[:-1000]
        sent = time.perf_counter()
        try:
            status, data = self._client.request("POST", f"/{self.index}/_search", json.dumps(body).encode(),
                                                self._headers)
        except TransportError as error:
            raise CentralError("unreachable", f"the central store at {self.url} cannot be reached: {error}") \
                from None
        if status in (401, 403):
            raise CentralError("unauthorized", f"the central store at {self.url} refused the credentials "
                                               f"(HTTP {status}): set the user and password of the fleet view")
        if status == 404:
            raise CentralError("missing", f"no index {self.index!r} at {self.url}: have the agents forwarded "
                                          "anything there yet (docs/forwarding.md)?")
        answered = time.perf_counter()
        try:
            answer: dict[str, Any] = json.loads(data or b"{}")
        except ValueError:
            answer = {}
        if status != 200:
            raise CentralError("failed", f"{self.url} answered HTTP {status}: {_reason(answer) or data[:200]!r}")
        self.timings.append((sent, answered, time.perf_counter()))
        del self.timings[:-1000]
        return answer

    # ------------------------------------------------------------------ the list

    def page(self, flt: FleetFilter, sort_key: str = "time", descending: bool = True,
             after: tuple[Any, ...] | None = None, size: int = 200) -> FleetPage:
        """`size` alerts after `after` (the last row's sort values; None: from the top)."""
        order = "desc" if descending else "asc"
        body: dict[str, Any] = {
            "size": size, "query": query(flt),
            "sort": [{SORT_FIELDS[sort_key]: {"order": order}}, {TIEBREAK: {"order": "asc"}}],
            "track_total_hits": after is None,  # counted once, with the first page
        }
        if after is not None:
            body["search_after"] = list(after)
        hits = self.search(body).get("hits") or {}
        total = hits.get("total") or {}
        alerts = [fleet_alert(hit) for hit in hits.get("hits") or []]
        if isinstance(total, int):
            return FleetPage(alerts, total, True)
        return FleetPage(alerts, int(total.get("value", 0)), total.get("relation", "eq") == "eq")

    def alert(self, alert_id: str) -> FleetAlert | None:
        body = {"size": 1, "query": {"bool": {"filter": [{"term": {"event.kind": "alert"}},
                                                         {"term": {"event.id": alert_id}}]}}}
        hits = (self.search(body).get("hits") or {}).get("hits") or []
        return fleet_alert(hits[0]) if hits else None

    def choices(self) -> tuple[list[str], list[str]]:
        """The hosts (busiest first) and rules that have alerts: the filter bar's lists."""
        body = {"size": 0, "query": {"term": {"event.kind": "alert"}},
                "aggs": {"hosts": {"terms": {"field": "host.name", "size": HOSTS_LISTED}},
                         "rules": {"terms": {"field": "rule.id", "size": RULES_LISTED}}}}
        aggs = self.search(body).get("aggregations") or {}
        hosts = [str(b["key"]) for b in (aggs.get("hosts") or {}).get("buckets", [])]
        rules = sorted(str(b["key"]) for b in (aggs.get("rules") or {}).get("buckets", []))
        return hosts, rules

    def overview(self, now: datetime, days: int = 14) -> FleetOverview:
        start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        day_ago, week_ago = format_time(now - timedelta(days=1)), format_time(now - timedelta(days=7))
        body = {"size": 0, "query": {"bool": {"filter": [{"term": {"event.kind": "alert"}},
                                                         {"range": {"@timestamp": {"gte": format_time(start)}}}]}},
                "aggs": {
                    "day": {"filter": {"range": {"@timestamp": {"gte": day_ago}}},
                            "aggs": {"high": {"filter": {"range": {"event.severity": {"gte": 7}}}}}},
                    "per_day": {"date_histogram": {"field": "@timestamp", "calendar_interval": "day"},
                                "aggs": {"high": {"filter": {"range": {"event.severity": {"gte": 7}}}}}},
                    "week": {"filter": {"range": {"@timestamp": {"gte": week_ago}}},
                             "aggs": {"rules": {"terms": {"field": "rule.id", "size": 5}},
                                      "hosts": {"terms": {"field": "host.name", "size": 5}}}},
                    "hosts": {"cardinality": {"field": "host.name"}}}}
        aggs = self.search(body).get("aggregations") or {}
        day = aggs.get("day") or {}
        counts = {str(b.get("key_as_string", ""))[:10]: (int(b["doc_count"]), int(b["high"]["doc_count"]))
                  for b in (aggs.get("per_day") or {}).get("buckets", [])}
        per_day = []
        for offset in range(days - 1, -1, -1):
            key = (now - timedelta(days=offset)).strftime("%Y-%m-%d")
            per_day.append((key, *counts.get(key, (0, 0))))
        week = aggs.get("week") or {}
        return FleetOverview(
            day=int(day.get("doc_count", 0)), day_high=int((day.get("high") or {}).get("doc_count", 0)),
            hosts=int((aggs.get("hosts") or {}).get("value", 0)), per_day=per_day,
            top_rules=[(str(b["key"]), int(b["doc_count"])) for b in (week.get("rules") or {}).get("buckets", [])],
            top_hosts=[(str(b["key"]), int(b["doc_count"])) for b in (week.get("hosts") or {}).get("buckets", [])])


def query(flt: FleetFilter) -> dict[str, Any]:
    """The bool query of a filter: alerts only, then severity, rule, host, time range and free text."""
    alerts = flt.alerts
    clauses: list[dict[str, Any]] = [{"term": {"event.kind": "alert"}}]
    if alerts.min_severity:
        clauses.append({"range": {"event.severity": {"gte": alerts.min_severity}}})
    if alerts.rule:
        clauses.append({"term": {"rule.id": alerts.rule}})
    if alerts.model:
        clauses.append({"term": {"weightwarden.model": alerts.model}})
    if flt.host:
        clauses.append({"term": {"host.name": flt.host}})
    if alerts.since is not None:
        clauses.append({"range": {"@timestamp": {"gte": format_time(alerts.since)}}})
    if alerts.until is not None:
        clauses.append({"range": {"@timestamp": {"lt": format_time(alerts.until)}}})
    text = alerts.text.strip()
    if text:  # every word, anywhere in the usual fields (keywords: whole values or a wildcard)
        fields = ["message", "rule.id", "rule.name", "host.name", "file.path", "file.name", "process.name",
                  "process.executable", "user.name", "weightwarden.model", "destination.address"]
        for word in text.split():
            clauses.append({"query_string": {"query": f"*{_escape(word)}*", "fields": fields,
                                             "analyze_wildcard": True}})
    return {"bool": {"filter": clauses}}


def fleet_alert(hit: dict[str, Any]) -> FleetAlert:
    """A search hit as the row the shared views show: the record rebuilt in the store's shape (the fields
    gui/models/alerts.py and gui/report.py read) from the ECS document."""
    doc = hit.get("_source") or {}
    event = doc.get("event") or {}
    rule = doc.get("rule") or {}
    ww = doc.get("weightwarden") or {}
    host = str((doc.get("host") or {}).get("name", ""))
    evidence = ww.get("evidence") or {}
    record: dict[str, Any] = {
        "id": event.get("id", hit.get("_id", "")), "kind": "alert", "time": doc.get("@timestamp", ""),
        "rule_id": rule.get("id", ""), "title": rule.get("name", ""), "severity": event.get("severity", 0),
        "message": doc.get("message", ""), "model": ww.get("model"), "evidence": evidence,
        "techniques": list(evidence.get("techniques") or []), "host": host}
    file = doc.get("file") or {}
    if file.get("path"):
        record["paths"] = [file["path"]]
    process = doc.get("process") or {}
    if process:
        record["process"] = {key: process[key] for key in ("pid", "name", "executable", "command_line")
                             if key in process}
        user = (process.get("user") or {}).get("name")
        if user:
            record["process"]["user"] = user
    destination = doc.get("destination") or {}
    if destination.get("address"):
        record["destination"] = {"kind": "network", "address": destination["address"],
                                 **({"port": destination["port"]} if "port" in destination else {})}
    row = AlertRow(rowid=0, id=str(record["id"]), sequence=int(event.get("sequence") or 0),
                   time=str(record["time"]), severity=int(event.get("severity") or 0), rule=str(record["rule_id"]),
                   title=str(record["title"]), model=ww.get("model"), status="", record_json=json.dumps(record),
                   incident=None, updates=int(evidence.get("updates") or 0) if isinstance(evidence, dict) else 0)
    return FleetAlert(row, host, tuple(hit.get("sort") or ()))


def _escape(word: str) -> str:
    """A word as a Lucene query-string term: its special characters escaped."""
    special = set('+-=&|><!(){}[]^"~*?:\\/ ')
    return "".join(f"\\{c}" if c in special else c for c in word)


def _reason(answer: dict[str, Any]) -> str:
    error = answer.get("error")
    if isinstance(error, dict):
        return f"{error.get('type', '')}: {error.get('reason', '')}"
    return str(error or "")
