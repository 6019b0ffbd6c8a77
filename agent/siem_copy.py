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
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.forward.render import Renderer
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


def digest(doc: dict[str, Any]) -> str:
    """Of a document without the fields that change when the agent is upgraded (its version)."""
    doc = json.loads(json.dumps(doc))
    if isinstance(doc.get("agent"), dict):
        doc["agent"].pop("version", None)
    product = doc.get("metadata", {}).get("product") if isinstance(doc.get("metadata"), dict) else None
    if isinstance(product, dict):
        product.pop("version", None)
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def json_lines_documents(path: str) -> Iterator[dict[str, Any]]:
    """FILE.N ... FILE.1, then FILE: the rotation order of the file destination, oldest first."""
    if not os.path.exists(path):
        raise CopyError(f"{path}: no such file")
    rotated = []
    index = 1
    while os.path.exists(f"{path}.{index}"):
        rotated.append(f"{path}.{index}")
        index += 1
    for name in [*reversed(rotated), path]:
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


def search_documents(url: str, *, timeout: float = 30.0) -> Iterator[dict[str, Any]]:
    """Every document of the index named by `url` (http(s)://[user:pass@]host:port/INDEX; no path: the bulk
    destination's default index), paged with search_after on the sequence field of the documents' format."""
    parts = urllib.parse.urlsplit(url)
    index = parts.path.strip("/") or DEFAULT_INDEX
    base = urllib.parse.urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""),
                                    "", "", "")) if parts.hostname else url
    headers = {"Content-Type": "application/json"}
    if parts.username:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode("ascii")
    api_key = os.environ.get("WEIGHTWARDEN_SIEM_API_KEY")
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"

    def call(path: str, body: Any = None, method: str = "POST") -> Any:
        request = urllib.request.Request(f"{base}/{index}{path}", method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=ssl.create_default_context()) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise CopyError(f"{base}/{index}{path}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise CopyError(f"{base}/{index}{path}: {error}") from None

    call("/_refresh")
    first = call("/_search", {"query": {"match_all": {}}, "size": 1})["hits"]["hits"]
    if not first:
        return
    shape = _shape(first[0].get("_source", {}))
    field_name = {"ecs": "event.sequence", "ocsf": "metadata.sequence"}.get(shape[0] if shape else "", "sequence")
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {"query": {"match_all": {}}, "size": PAGE, "sort": [{field_name: "asc"}]}
        if after is not None:
            body["search_after"] = after
        hits = call("/_search", body)["hits"]["hits"]
        for hit in hits:
            source = hit.get("_source")
            if isinstance(source, dict):
                yield source
        if len(hits) < PAGE:
            return
        after = hits[-1].get("sort")
        if not after:
            raise CopyError(f"{base}/{index}: the search API does not page with search_after")


def documents(source: str) -> Iterator[dict[str, Any]]:
    if source.startswith(("http://", "https://")):
        return search_documents(source)
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
