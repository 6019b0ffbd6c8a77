"""`weightwarden verify --against FILE|URL`: the local log against the SIEM's copy of it.

The copy is what a destination delivered: a JSON-lines file as the `file` destination writes it (with its
rotated siblings FILE.1, FILE.2...), or an Elasticsearch/OpenSearch index the `bulk` destination fills,
read through its HTTP search API. Documents may be native records, ECS or OCSF (docs/forwarding.md); each
is recognised by its shape, and the local record is rendered the same way (agent/forward/documents.py,
with the document's own host name) and compared field for field, so the comparison needs no setting.

What is named: a record the SIEM holds that the local log lacks (removed locally: a deleted tail shows up
here even when the local chain looks whole), a record whose local content differs from the delivered
one, and a local record missing from the SIEM between the oldest and newest record it holds (a gap).
Local records newer than the newest delivered one are only counted: they may simply not be sent yet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.forward.http import HttpClient
from weightwarden.agent.forward.render import Renderer
from weightwarden.agent.forward.transport import TransportError
from weightwarden.agent.store.outbox import OutboxRecord

DEFAULT_INDEX = "weightwarden-events"  # the bulk destination's default index (forward/destination_types.py)
PAGE = 1000


class CopyError(RuntimeError):
    """The SIEM's copy cannot be read (no such file, HTTP error, not JSON)."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """One delivered document, reduced to what the comparison needs (a long copy costs little memory)."""

    id: str
    sequence: int
    format: str  # native | ecs | ocsf
    host: str
    digest: str


@dataclass(frozen=True)
class Difference:
    problem: str  # removed (only in the SIEM), different, missing (a gap in the SIEM's copy)
    sequence: int
    record_id: str
    message: str


@dataclass
class Comparison:
    source: str
    delivered: int = 0
    compared: int = 0
    not_yet_delivered: int = 0  # local records newer than the newest delivered one
    other_hosts: int = 0  # documents of other agents in a shared index, left alone
    differences: list[Difference] = field(default_factory=list)


# ------------------------------------------------------------------------------ reading the copy


def _shape(doc: dict[str, Any]) -> tuple[str, str, int, str] | None:
    """(format, id, sequence, host) of a delivered document; None for something that is not a record."""
    try:
        if "ecs" in doc and isinstance(doc.get("event"), dict):
            return "ecs", str(doc["event"]["id"]), int(doc["event"]["sequence"]), str(doc["host"]["name"])
        if "class_uid" in doc and isinstance(doc.get("metadata"), dict):
            return "ocsf", str(doc["metadata"]["uid"]), int(doc["metadata"]["sequence"]), \
                str(doc["device"].get("hostname") or doc["device"]["name"])  # name: no DNS name (ocsf.py)
        if "id" in doc and "sequence" in doc and "kind" in doc:
            return "native", str(doc["id"]), int(doc["sequence"]), str(doc.get("host", ""))
    except (KeyError, TypeError, ValueError):
        return None
    return None


def digest(doc: dict[str, Any], *, chain: bool = False) -> str:
    """Of a document without the fields that change when the agent is upgraded (its version), and without
    its chain place (forward/documents.py add_chain) unless `chain`: `compare` renders the local record
    without it, `verify --from` (central_verify.py) with it."""
    doc = json.loads(json.dumps(doc))
    if isinstance(doc.get("agent"), dict):
        doc["agent"].pop("version", None)
    if not chain:
        if "id" in doc and "kind" in doc:  # a native document
            doc.pop("chain", None)
        if isinstance(doc.get("event"), dict) and "ecs" in doc:
            doc["event"].pop("original", None)
        if isinstance(doc.get("weightwarden"), dict):
            doc["weightwarden"].pop("chain", None)
    product = doc.get("metadata", {}).get("product") if isinstance(doc.get("metadata"), dict) else None
    if isinstance(product, dict):
        product.pop("version", None)
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def json_lines_documents(path: str) -> Iterator[dict[str, Any]]:
    """FILE.N ... FILE.1, then FILE: the rotation order of the file destination, oldest first."""
    rotated = []
    index = 1
    while os.path.exists(f"{path}.{index}"):
        rotated.append(f"{path}.{index}")
        index += 1
    if not os.path.exists(path) and not rotated:
        raise CopyError(f"{path}: no such file")
    # Right after a rotation FILE itself is absent until the next record: its rotated siblings hold the copy.
    for name in [*reversed(rotated), *([path] if os.path.exists(path) else [])]:
        try:
            with open(name, encoding="utf-8", errors="surrogateescape") as lines:
                for number, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        raise CopyError(f"{name}:{number}: not a JSON line") from None
                    if isinstance(doc, dict):
                        yield doc
        except OSError as error:
            raise CopyError(f"{name}: {error.strerror}") from None


def search_documents(url: str, *, host: str | None = None, page_size: int = PAGE, timeout: float = 30.0,
                     tls: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Every document of the index named by `url` (http(s)://[user:pass@]host:port/INDEX, INDEX may be a
    pattern such as logs-weightwarden-*; no path: the bulk destination's default index), in sequence order,
    paged with search_after on the sequence field of the documents' format (no deep `from` offsets).

    `host`: only that agent's documents (the query narrows, the caller still checks each document's host).
    `tls`: ca_file, client_cert, client_key, server_name for forward/http.py's client, which also takes
    proxies from the environment. Credentials: user:pass in the URL, or WEIGHTWARDEN_SIEM_API_KEY.
    """
    parts = urllib.parse.urlsplit(url)
    index = parts.path.strip("/") or DEFAULT_INDEX
    headers = {"Content-Type": "application/json"}
    if parts.username:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode("ascii")
    api_key = os.environ.get("WEIGHTWARDEN_SIEM_API_KEY")
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    name = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else (parts.hostname or "")
    origin = urllib.parse.urlunsplit((parts.scheme, name + (f":{parts.port}" if parts.port else ""), "", "", ""))
    try:
        tls = tls or {}
        client = HttpClient(origin, timeout=timeout, ca_file=tls.get("ca_file", ""),
                            client_cert=tls.get("client_cert", ""), client_key=tls.get("client_key", ""),
                            server_name=tls.get("server_name", ""))
    except TransportError as error:
        raise CopyError(f"{origin}: {error}") from None

    def call(path: str, body: Any = None) -> Any:
        where = f"{origin}/{index}{path}"
        try:
            status, data = client.request("POST", f"/{urllib.parse.quote(index, safe='*,-_.')}{path}",
                                          None if body is None else json.dumps(body).encode(), headers)
        except TransportError as error:
            raise CopyError(f"cannot reach the store: {error}") from None
        if status == 404:
            raise CopyError(f"{where}: HTTP 404: no such index")
        if status >= 300:
            raise CopyError(f"{where}: HTTP {status}: {data[:300].decode('utf-8', 'replace')}")
        try:
            return json.loads(data or b"{}")
        except ValueError:
            raise CopyError(f"{where}: the answer is not JSON") from None

    query: dict[str, Any] = {"match_all": {}}
    if host is not None:  # ECS host.name is a keyword; a native document's host is mapped as the index decided
        query = {"bool": {"should": [{"term": {name: host}} for name in (
            "host.name", "host.name.keyword", "host", "host.keyword")], "minimum_should_match": 1}}
    try:
        try:
            call("/_refresh")
        except CopyError as error:  # a read-only account may not refresh: what is searchable is read
            if "cannot reach" in str(error) or "no such index" in str(error):
                raise
        first = call("/_search", {"query": query, "size": 1})["hits"]["hits"]
        if not first:
            return
        shape = _shape(first[0].get("_source", {}))
        field_name = {"ecs": "event.sequence", "ocsf": "metadata.sequence"}.get(shape[0] if shape else "",
                                                                                "sequence")
        # Keyset paging: the next page starts after sequence-1 of the last one, and documents already read at
        # that sequence are skipped, so duplicates (at-least-once delivery into rolled-over indices) that
        # straddle a page boundary are all read.
        after: list[Any] | None = None
        seen_at_last: set[tuple[str, str]] = set()
        while True:
            body: dict[str, Any] = {"query": query, "size": page_size,
                                    "sort": [{field_name: {"order": "asc", "unmapped_type": "long"}}]}
            if after is not None:
                body["search_after"] = after
            hits = call("/_search", body)["hits"]["hits"]
            fresh = [hit for hit in hits if (hit.get("_index", ""), hit.get("_id", "")) not in seen_at_last]
            for hit in fresh:
                source = hit.get("_source")
                if isinstance(source, dict):
                    yield source
            if len(hits) < page_size:
                return
            last = hits[-1].get("sort")
            if not last or not isinstance(last[0], int):
                raise CopyError(f"{origin}/{index}: the search API does not page with search_after")
            at_last = {(h.get("_index", ""), h.get("_id", "")) for h in hits if h.get("sort") == last}
            if not fresh or len(at_last) >= page_size:
                raise CopyError(f"{origin}/{index}: more than {page_size} documents with sequence {last[0]}: "
                                "raise the page size")
            seen_at_last = at_last
            after = [last[0] - 1]
    finally:
        client.close()


def documents(source: str, *, host: str | None = None, page_size: int = PAGE,
              tls: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """The documents of a store: an index URL (only `host`'s when given, in sequence order), or a JSON-lines
    file (`file:///path` or a path) with its rotated siblings, in the order written."""
    if source.startswith(("http://", "https://")):
        return search_documents(source, host=host, page_size=page_size, tls=tls)
    return json_lines_documents(source[len("file://"):] if source.startswith("file://") else source)


# ------------------------------------------------------------------------------ comparing


def compare(source: str, local: Iterator[tuple[int, str, str, dict[str, Any]]], host: str) -> Comparison:
    """`local` yields (sequence, kind, id, record) in sequence order; `host` is this agent's name."""
    result = Comparison(source)
    delivered: dict[str, Delivered] = {}
    for doc in documents(source):
        shape = _shape(doc)
        if shape is None:
            continue
        fmt, record_id, sequence, doc_host = shape
        if doc_host != host:
            result.other_hosts += 1
            continue
        delivered[record_id] = Delivered(record_id, sequence, fmt, doc_host, digest(doc))
    result.delivered = len(delivered)
    if not delivered:
        return result
    lowest = min(d.sequence for d in delivered.values())
    highest = max(d.sequence for d in delivered.values())
    renderers: dict[tuple[str, str], Renderer] = {}
    for sequence, kind, record_id, record in local:
        copy = delivered.pop(record_id, None)
        if copy is None:
            if sequence > highest:
                result.not_yet_delivered += 1
            elif sequence >= lowest:
                result.differences.append(Difference(
                    "missing", sequence, record_id,
                    f"record {sequence} ({kind} {record_id}) is in the local log but not in the SIEM's copy "
                    f"({source}), which holds records {lowest}..{highest}: it was inserted locally, or never "
                    "delivered (a dead letter)"))
            continue
        result.compared += 1
        renderer = renderers.setdefault((copy.format, copy.host), Renderer(host=copy.host, format=copy.format))
        mine = digest(renderer.document(OutboxRecord(sequence, kind, record_id, record)))
        if mine != copy.digest:
            result.differences.append(Difference(
                "different", sequence, record_id,
                f"record {sequence} ({kind} {record_id}) differs from the copy the SIEM received ({source}): it "
                "was altered locally (or in the SIEM)"))
    for copy in sorted(delivered.values(), key=lambda d: d.sequence):
        result.differences.append(Difference(
            "removed", copy.sequence, copy.id,
            f"record {copy.sequence} ({copy.id}) is in the SIEM's copy ({source}) but not in the local log: "
            "it was removed locally"))
    result.differences.sort(key=lambda d: d.sequence)
    return result
