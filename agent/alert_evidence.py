"""Typed evidence of alerts: one frozen dataclass per kind, shared by detection, store, app and forwarders.

Detection builds these (agent/detect); `Alert.to_dict()` stores them as the JSON object `evidence` with
the keys records have always had, so stored, chained and forwarded records keep their shape; the store's
read API (`AlertRow.evidence`) and the forwarders (`forward/fields.py`) read them back with
`evidence_from`. Nobody outside this module looks up evidence keys.

    AlertEvidence            the part every alert shares: the rule's description and ATT&CK/ATLAS ids,
                             the process tree, the incident (events, updates, first seen, timeline, first
                             alert's id), the canary flag, the steps a sequence rule matched
      RuleMatchEvidence      a rule's condition (or sequence) matched; nothing more to show
      CopyEvidence           model-copy: a byte copy (quick fingerprint, SHA-256)
      DerivedCopyEvidence    model-copy: converted, re-sharded, cast or partial (tensor fingerprints)
      EgressBudgetEvidence   egress-budget: bytes read and sent by a process tree, progress
      BulkCollectionEvidence bulk-collection: distinct models read within a window
      TransferEvidence       transfer-tool: the transfer parsed from the command line
      StagingEvidence        staging: the archiver's parsed output, linked to the model read

Reading is tolerant of older records: a missing key takes its default, and a key this module does not
know, or whose value has an unexpected type, is kept as it was in `other` (shown by the app, written back
unchanged). Which kind a stored object is follows from the keys only that kind writes (`evidence_from`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

# --------------------------------------------------------------------------------------- small parts


def attack_ids(techniques: tuple[str, ...]) -> tuple[str, ...]:
    """The MITRE ATT&CK ids (T1048, T1048.003, TA0010) of a rule's techniques."""
    return tuple(t for t in techniques if not t.startswith("AML."))


def atlas_ids(techniques: tuple[str, ...]) -> tuple[str, ...]:
    """The MITRE ATLAS ids (AML.T0025) of a rule's techniques."""
    return tuple(t for t in techniques if t.startswith("AML."))


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of an incident, as the alert lists it."""

    time: str
    action: str
    event_id: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class SequenceStep:
    """One step of a sequence rule and the event that matched it."""

    step: str
    action: str
    event_id: str


@dataclass(frozen=True, slots=True)
class TransferFacts:
    """What a transfer tool was told to send, and where (agent/detect/transfer.py)."""

    tool: str
    destination: str | None = None
    kind: str = "unknown"  # bucket | hub | git | host | url | unknown
    host: str | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StagingFacts:
    """What an archiver, compressor, encrypter or splitter was told to write (agent/detect/transfer.py)."""

    tool: str
    operation: str = ""  # archive | compress | encrypt | split
    output: str | None = None
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lineage:
    """Read -> write: the protected file a process read and the file it wrote from it."""

    read: str | None = None
    wrote: str | None = None


# ------------------------------------------------------------------------------------------- evidence


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvidence:
    """What every alert carries. A base: alerts hold one of the subclasses below."""

    kind: ClassVar[str] = "rule-match"
    _own: ClassVar[tuple[str, ...]] = ()  # the keys only this kind writes (always, even when None)

    description: str = ""
    techniques: tuple[str, ...] = ()  # MITRE ATT&CK / ATLAS ids, as the rule declared them
    process_tree: str | None = None  # the tree's key (detect/fields.py tree_key): session:N or pid:N
    events: int = 1  # events folded into the incident so far
    updates: int = 0  # updates of the incident before and including this alert
    first_seen: str | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    incident: str | None = None  # the incident's first alert (its own id for a first alert)
    canary: bool = False  # the file is a planted decoy
    sequence: tuple[SequenceStep, ...] = ()  # a sequence rule's matched steps, in order
    other: Mapping[str, Any] = field(default_factory=dict)  # keys of older records nobody here knows

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON object: the shared keys that say something, this kind's keys (always), `other`.

        An incident's counts are written with its id (an engine alert); a copy alert, which is no incident
        of events, has neither, as it never had."""
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        if self.techniques:
            out["techniques"] = list(self.techniques)
        if self.process_tree is not None:
            out["process_tree"] = self.process_tree
        if self.incident is not None or self.events != 1:
            out["events"] = self.events
        if self.incident is not None or self.updates:
            out["updates"] = self.updates
        if self.first_seen is not None:
            out["first_seen"] = self.first_seen
        if self.timeline:
            out["timeline"] = [_plain(entry) for entry in self.timeline]
        if self.sequence:
            out["sequence"] = [_plain(step) for step in self.sequence]
        if self.canary:
            out["canary"] = True
        if self.incident is not None:
            out["incident"] = self.incident
        for name in self._own:
            out[name] = _json(getattr(self, name))
        out.update(self.other)  # as read: unknown keys, and known ones whose value had another type
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleMatchEvidence(AlertEvidence):
    """A rule's condition or sequence matched (unexpected program, canary touched, staged then sent...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyEvidence(AlertEvidence):
    """model-copy: a new file holds the same bytes as a protected model file."""

    kind: ClassVar[str] = "copy"
    _own: ClassVar[tuple[str, ...]] = ("source_path", "copy_path", "format", "size", "matched_on",
                                       "quick_fingerprint", "sha256", "other_sources")

    source_path: str = ""
    copy_path: str = ""
    format: str | None = None
    size: int | None = None
    matched_on: str = "quick_fingerprint"  # or sha256 when the copy's SHA-256 confirmed it
    quick_fingerprint: str | None = None
    sha256: str | None = None  # the source's
    other_sources: tuple[str, ...] = ()  # further protected files with these bytes
    severity_by: str | None = None  # why this severity: "destination removable"

    def to_dict(self) -> dict[str, Any]:
        return _with_severity_by(AlertEvidence.to_dict(self), self.severity_by)


@dataclass(frozen=True, slots=True, kw_only=True)
class DerivedCopyEvidence(AlertEvidence):
    """model-copy: a file with other bytes holds tensors of a protected model (converted, cast, partial)."""

    kind: ClassVar[str] = "derived-copy"
    _own: ClassVar[tuple[str, ...]] = (
        "source_model", "source_paths", "copy_path", "format", "size", "matched_on", "matched_tensors",
        "total_tensors", "tensor_share", "matched_bytes", "total_bytes", "byte_share", "element_share", "sha256",
        "other_models", "similarity", "agreement", "matched_names", "public_tensors", "public_base",
        "delta_share", "delta_z")

    source_model: str = ""
    source_paths: tuple[str, ...] = ()
    copy_path: str = ""
    format: str | None = None
    size: int | None = None
    matched_on: str = "tensor_fingerprints"
    matched_tensors: int = 0
    total_tensors: int = 0
    tensor_share: float = 0.0
    matched_bytes: int = 0
    total_bytes: int = 0
    byte_share: float = 0.0
    element_share: float = 0.0
    sha256: str | None = None  # the copy's
    other_models: tuple[str, ...] = ()
    severity_by: str | None = None
    # agent/similarity: how similar the copy is over the model's private tensors (0..1), the mean sign
    # agreement of the matched ones, their names (largest first); the model's tensors that are public weights
    # and the public model it was fine-tuned from; the share of that fine-tune's change the copy carries and
    # its z score (None: no fine-tuned tensor matched).
    similarity: float = 0.0
    agreement: float = 0.0
    matched_names: tuple[str, ...] = ()
    public_tensors: int = 0
    public_base: str | None = None
    delta_share: float | None = None
    delta_z: float | None = None

    @property
    def whole(self) -> bool:
        """Every tensor of the source model is in the copy (converted, re-sharded or cast, not partial)."""
        return self.total_tensors > 0 and self.matched_tensors == self.total_tensors

    def to_dict(self) -> dict[str, Any]:
        return _with_severity_by(AlertEvidence.to_dict(self), self.severity_by)


@dataclass(frozen=True, slots=True)
class LineageOutput:
    """One output of a flow that read a protected model: a file it wrote or a connection it sent on."""

    kind: str  # file | network
    place: str  # detect/places.py kind of the file's place (removable, ..., local), or "network"
    where: str  # the file's path, or address:port
    bytes: int  # written (file size at its last close, at most its allocated blocks) or sent
    state: str = "counted"  # counted | recognised-copy (model-copy's) | model-file (a local model file) | deleted
    # | allowlisted (written or sent by allowlisted processes only: not counted)
    # how `bytes` was measured: "size" (a file's size at its close, a connection's bytes sent), "held-open" (a
    # file deleted while its writer held it open, measured through a descriptor the agent took on it then),
    # "writes-upper-bound" (such a file gone before the agent could hold it: the writer's write() bytes since
    # it joined the flow, every file and pipe it wrote included: at most this much), "relayed" (sent by a local
    # listener the flow connected to, a proxy or a port forwarder: what it sent since, at most what it was fed)
    measure: str = "size"
    # who sent (network): "known" (the socket's process), or "inferred" (a socket seen only at its destruction,
    # whose process the kernel no longer names, given to the one tainted flow whose reader had just exited)
    owner: str = "known"


@dataclass(frozen=True, slots=True, kw_only=True)
class LineageEvidence(AlertEvidence):
    """model-lineage: a flow of processes read a protected model and wrote or sent `share` of it, any shape."""

    kind: ClassVar[str] = "lineage"
    _own: ClassVar[tuple[str, ...]] = ("source_model", "source_path", "bytes_read", "model_bytes", "output_bytes",
                                       "share", "ratio", "outputs", "processes", "flow_processes", "user",
                                       "inherited_from")

    source_model: str = ""
    source_path: str = ""
    bytes_read: int = 0  # protected bytes the flow read (X)
    model_bytes: int = 0  # the model file's size
    output_bytes: int = 0  # counted outputs' bytes
    share: float = 0.0  # output_bytes / bytes_read, capped at 1 (encodings and archives can exceed it)
    ratio: float = 0.0  # the threshold in effect
    outputs: tuple[LineageOutput, ...] = ()
    processes: tuple[str, ...] = ()  # "name[pid]" of the flow's processes, up to PROCESSES_LISTED
    flow_processes: int = 0  # how many processes the flow had (all of them, listed or not)
    user: str | None = None
    inherited_from: str | None = None  # the tainted file a later flow read (outputs inherit the taint)


@dataclass(frozen=True, slots=True, kw_only=True)
class EgressBudgetEvidence(AlertEvidence):
    """egress-budget: a process tree sent `ratio` of the protected bytes it read (or more)."""

    kind: ClassVar[str] = "egress-budget"
    _own: ClassVar[tuple[str, ...]] = ("bytes_sent", "bytes_read", "model_bytes", "ratio", "progress",
                                       "connections", "models", "files")

    bytes_sent: int = 0  # to destinations outside the allowlist
    bytes_read: int = 0  # protected bytes read by the tree
    model_bytes: int = 0  # the size of the model files it read: what the progress is measured against
    ratio: float = 0.0  # the budget in effect (rule, or [detect] egress_ratio when set)
    progress: float = 0.0  # bytes_sent / model_bytes, at most 1
    connections: tuple[tuple[str, int], ...] = ()  # (address:port/local port, bytes sent), up to 20
    models: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # the protected files the tree read, up to 20 (older records: none)

    def to_dict(self) -> dict[str, Any]:
        out = AlertEvidence.to_dict(self)
        if "connections" not in self.other:
            out["connections"] = dict(self.connections)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkCollectionEvidence(AlertEvidence):
    """bulk-collection: one process tree read many distinct protected models within a window."""

    kind: ClassVar[str] = "bulk-collection"
    _own: ClassVar[tuple[str, ...]] = ("distinct_models", "models", "window_seconds")

    distinct_models: int = 0
    models: tuple[str, ...] = ()  # up to 50
    window_seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferEvidence(AlertEvidence):
    """transfer-tool: a transfer tool pointed at a protected model, with its parsed destination."""

    kind: ClassVar[str] = "transfer-tool"
    _own: ClassVar[tuple[str, ...]] = ("transfer",)

    transfer: TransferFacts = field(default_factory=lambda: TransferFacts(""))


@dataclass(frozen=True, slots=True, kw_only=True)
class StagingEvidence(AlertEvidence):
    """staging: an archiver read a protected model; its output is linked to it."""

    kind: ClassVar[str] = "staging"
    _own: ClassVar[tuple[str, ...]] = ("staging", "lineage")

    staging: StagingFacts = field(default_factory=lambda: StagingFacts(""))
    lineage: Lineage = field(default_factory=Lineage)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingExtractionEvidence(AlertEvidence):
    """serving-budget: one remote peer asked a protected model's server for more than its budgets allow
    (docs/serving.md): answer bytes per hour or per day, or many short connections in a burst."""

    kind: ClassVar[str] = "serving-budget"
    _own: ClassVar[tuple[str, ...]] = ("server", "server_process", "peer", "peer_connections", "request_bytes",
                                       "answer_bytes", "answer_bytes_hour", "answer_bytes_day",
                                       "connections_in_burst", "budgets", "exceeded", "models")

    server: str = ""  # address:port (namespace) of the listener
    server_process: str | None = None  # name[pid] user
    peer: str = ""
    peer_connections: int = 0  # accepted from the peer since the agent first saw it
    request_bytes: int = 0  # received from the peer
    answer_bytes: int = 0  # sent to the peer
    answer_bytes_hour: int = 0  # within the last hour
    answer_bytes_day: int = 0
    connections_in_burst: int = 0  # within the burst window
    budgets: Mapping[str, float] = field(default_factory=dict)  # the rule's parameters in effect
    exceeded: tuple[str, ...] = ()  # which budgets: hour | day | burst
    models: tuple[str, ...] = ()


KINDS: tuple[type[AlertEvidence], ...] = (RuleMatchEvidence, CopyEvidence, DerivedCopyEvidence,
                                          EgressBudgetEvidence, BulkCollectionEvidence, TransferEvidence,
                                          StagingEvidence, ServingExtractionEvidence)

# ------------------------------------------------------------------------------------------- reading


def evidence_from(raw: object) -> AlertEvidence:
    """The typed evidence of a stored record's `evidence` object (any age; never raises)."""
    if not isinstance(raw, Mapping):
        return RuleMatchEvidence(other={} if raw is None else {"evidence": raw})
    return _reader(raw)(raw)


def _reader(raw: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], AlertEvidence]:
    """Which kind wrote `raw`: by the keys only that kind writes."""
    if "flow_processes" in raw or "output_bytes" in raw:
        return _lineage_evidence
    if "peer" in raw and "answer_bytes" in raw:
        return _serving
    if raw.get("matched_on") == "tensor_fingerprints" or "tensor_share" in raw or "source_model" in raw:
        return _derived_copy
    if "copy_path" in raw or "source_path" in raw or "matched_on" in raw:
        return _copy
    if "bytes_sent" in raw or "model_bytes" in raw or "progress" in raw:
        return _egress
    if "distinct_models" in raw:
        return _bulk
    if isinstance(raw.get("transfer"), Mapping):
        return _transfer
    if isinstance(raw.get("staging"), Mapping):
        return _staging
    return _rule_match


class _Fields:
    """Reads keys of one stored object, typed; what it cannot read stays in `other`."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.used: set[str] = set()

    def get(self, key: str, parse: Callable[[Any], Any], default: Any) -> Any:
        if key not in self.raw:
            return default
        value = parse(self.raw[key])
        if value is _BAD:
            return default
        self.used.add(key)
        return value

    def shared(self) -> dict[str, Any]:
        return {
            "description": self.get("description", _text, ""),
            "techniques": self.get("techniques", _texts, ()),
            "process_tree": self.get("process_tree", _optional_text, None),
            "events": self.get("events", _whole, 1),
            "updates": self.get("updates", _whole, 0),
            "first_seen": self.get("first_seen", _optional_text, None),
            "timeline": self.get("timeline", _items(_timeline_entry), ()),
            "incident": self.get("incident", _optional_text, None),
            "canary": self.get("canary", _flag, False),
            "sequence": self.get("sequence", _items(_sequence_step), ()),
        }

    def other(self) -> dict[str, Any]:
        return {key: value for key, value in self.raw.items() if key not in self.used}


def _rule_match(raw: Mapping[str, Any]) -> AlertEvidence:
    read = _Fields(raw)
    shared = read.shared()
    return RuleMatchEvidence(**shared, other=read.other())


def _copy(raw: Mapping[str, Any]) -> AlertEvidence:
    read = _Fields(raw)
    shared = read.shared()
    return CopyEvidence(
        **shared, source_path=read.get("source_path", _text, ""), copy_path=read.get("copy_path", _text, ""),
        format=read.get("format", _optional_text, None), size=read.get("size", _optional_whole, None),
        matched_on=read.get("matched_on", _text, "quick_fingerprint"),
        quick_fingerprint=read.get("quick_fingerprint", _optional_text, None),
        sha256=read.get("sha256", _optional_text, None), other_sources=read.get("other_sources", _texts, ()),
        severity_by=read.get("severity_by", _optional_text, None), other=read.other())


def _derived_copy(raw: Mapping[str, Any]) -> AlertEvidence:
    read = _Fields(raw)
    shared = read.shared()
    return DerivedCopyEvidence(
        **shared, source_model=read.get("source_model", _text, ""),
        source_paths=read.get("source_paths", _texts, ()), copy_path=read.get("copy_path", _text, ""),
        format=read.get("format", _optional_text, None), size=read.get("size", _optional_whole, None),
        matched_on=read.get("matched_on", _text, "tensor_fingerprints"),
        matched_tensors=read.get("matched_tensors", _whole, 0), total_tensors=read.get("total_tensors", _whole, 0),
        tensor_share=read.get("tensor_share", _number, 0.0), matched_bytes=read.get("matched_bytes", _whole, 0),
        total_bytes=read.get("total_bytes", _whole, 0), byte_share=read.get("byte_share", _number, 0.0),
        element_share=read.get("element_share", _number, 0.0), sha256=read.get("sha256", _optional_text, None),
        other_models=read.get("other_models", _texts, ()), severity_by=read.get("severity_by", _optional_text, None),
        similarity=read.get("similarity", _number, 0.0), agreement=read.get("agreement", _number, 0.0),
        matched_names=read.get("matched_names", _texts, ()), public_tensors=read.get("public_tensors", _whole, 0),
        public_base=read.get("public_base", _optional_text, None),
        delta_share=read.get("delta_share", _optional_number, None),
        delta_z=read.get("delta_z", _optional_number, None), other=read.other())


def _egress(raw: Mapping[str, Any]) -> AlertEvidence:
    read = _Fields(raw)
    shared = read.shared()
    return EgressBudgetEvidence(
        **shared, bytes_sent=read.get("bytes_sent", _whole, 0), bytes_read=read.get("bytes_read", _whole, 0),
        model_bytes=read.get("model_bytes", _whole, 0), ratio=read.get("ratio", _number, 0.0),
        progress=read.get("progress", _number, 0.0), connections=read.get("connections", _byte_counts, ()),
        models=read.get("models", _texts, ()), files=read.get("files", _texts, ()), other=read.other())


def _serving(raw: Mapping[str, Any]) -> AlertEvidence:
    read = _Fields(raw)
    shared = read.shared()
    return ServingExtractionEvidence(
        **shared, server=read.get("server", _text, ""), server_process=read.get("server_process", _optional_text, None),
        peer=read.get("peer", _text, ""), peer_connections=read.get("peer_connections", _whole, 0),
        request_bytes=read.get("request_bytes", _whole, 0), answer_bytes=read.get("answer_bytes", _whole, 0),
        answer_bytes_hour=read.get("answer_bytes_hour", _whole, 0),
        answer_bytes_day=read.get("answer_bytes_day", _whole, 0),
        connections_in_burst=read.get("connections_in_burst", _whole, 0),
        budgets=read.get("budgets", _numbers, {}), exceeded=read.get("exceeded", _texts, ()),
        models=read.get("models", _texts, ()), other=read.other())


def _lineage_evidence(raw: Mapping[str, Any]) -> AlertEvidence:
    read = _Fields(raw)
    shared = read.shared()
    return LineageEvidence(
        **shared, source_model=read.get("source_model", _text, ""), source_path=read.get("source_path", _text, ""),
        bytes_read=read.get("bytes_read", _whole, 0), model_bytes=read.get("model_bytes", _whole, 0),
        output_bytes=read.get("output_bytes", _whole, 0), share=read.get("share", _number, 0.0),
        ratio=read.get("ratio", _number, 0.0), outputs=read.get("outputs", _items(_lineage_output), ()),
        processes=read.get("processes", _texts, ()), flow_processes=read.get("flow_processes", _whole, 0),
        user=read.get("user", _optional_text, None), inherited_from=read.get("inherited_from", _optional_text, None),
        other=read.other())


def _lineage_output(raw: Mapping[str, Any]) -> LineageOutput | None:
    if not isinstance(raw.get("where"), str):
        return None
    size = raw.get("bytes")
    return LineageOutput(str(raw.get("kind", "file")), str(raw.get("place", "local")), raw["where"],
                         size if isinstance(size, int) and not isinstance(size, bool) else 0,
                         str(raw.get("state", "counted")), str(raw.get("measure", "size")),
                         str(raw.get("owner", "known")))


def _bulk(raw: Mapping[str, Any]) -> AlertEvidence:
    read = _Fields(raw)
    shared = read.shared()
    return BulkCollectionEvidence(
        **shared, distinct_models=read.get("distinct_models", _whole, 0), models=read.get("models", _texts, ()),
        window_seconds=read.get("window_seconds", _number, 0.0), other=read.other())


def _transfer(raw: Mapping[str, Any]) -> AlertEvidence:
    read = _Fields(raw)
    shared = read.shared()
    return TransferEvidence(**shared, transfer=read.get("transfer", _transfer_facts, TransferFacts("")),
                            other=read.other())


def _staging(raw: Mapping[str, Any]) -> AlertEvidence:
    read = _Fields(raw)
    shared = read.shared()
    return StagingEvidence(**shared, staging=read.get("staging", _staging_facts, StagingFacts("")),
                           lineage=read.get("lineage", _lineage, Lineage()), other=read.other())


# ------------------------------------------------------------------------------ value parsers, writers

_BAD: Any = object()  # a parser's "not this type"
_T = TypeVar("_T")


def _text(value: Any) -> Any:
    return value if isinstance(value, str) else _BAD


def _optional_text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else _BAD


def _whole(value: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else _BAD


def _optional_whole(value: Any) -> Any:
    return None if value is None else _whole(value)


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else _BAD


def _optional_number(value: Any) -> Any:
    return None if value is None else _number(value)


def _flag(value: Any) -> Any:
    return value if isinstance(value, bool) else _BAD


def _numbers(value: Any) -> Any:
    if not isinstance(value, Mapping) or any(_number(item) is _BAD for item in value.values()):
        return _BAD
    return {str(key): float(item) for key, item in value.items()}


def _texts(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        return _BAD
    return tuple(value)


def _items(parse: Callable[[Mapping[str, Any]], _T | None]) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return _BAD
        items = [parse(item) if isinstance(item, Mapping) else None for item in value]
        return _BAD if any(item is None for item in items) else tuple(items)
    return read


def _timeline_entry(raw: Mapping[str, Any]) -> TimelineEntry | None:
    time, action, event_id = raw.get("time"), raw.get("action"), raw.get("event_id")
    if not (isinstance(time, str) and isinstance(action, str) and isinstance(event_id, str)):
        return None
    message = raw.get("message")
    return TimelineEntry(time, action, event_id, message if isinstance(message, str) else "")


def _sequence_step(raw: Mapping[str, Any]) -> SequenceStep | None:
    step, action, event_id = raw.get("step"), raw.get("action"), raw.get("event_id")
    if not (isinstance(step, str) and isinstance(action, str) and isinstance(event_id, str)):
        return None
    return SequenceStep(step, action, event_id)


def _byte_counts(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return _BAD
    pairs = [(str(key), count) for key, count in value.items()]
    if not all(isinstance(count, int) and not isinstance(count, bool) for _, count in pairs):
        return _BAD
    return tuple(pairs)


def _transfer_facts(value: Any) -> Any:
    if not isinstance(value, Mapping) or not isinstance(value.get("tool"), str):
        return _BAD
    sources = _texts(value.get("sources", []))
    kind = value.get("kind")
    return TransferFacts(value["tool"], _str_or_none(value.get("destination")),
                         kind if isinstance(kind, str) else "unknown", _str_or_none(value.get("host")),
                         () if sources is _BAD else sources)


def _staging_facts(value: Any) -> Any:
    if not isinstance(value, Mapping) or not isinstance(value.get("tool"), str):
        return _BAD
    inputs = _texts(value.get("inputs", []))
    operation = value.get("operation")
    return StagingFacts(value["tool"], operation if isinstance(operation, str) else "",
                        _str_or_none(value.get("output")), () if inputs is _BAD else inputs)


def _lineage(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return _BAD
    return Lineage(_str_or_none(value.get("read")), _str_or_none(value.get("wrote")))


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _plain(item: Any) -> dict[str, Any]:
    """A small part (TimelineEntry, TransferFacts, ...) as its JSON object, in field order."""
    return {f.name: _json(getattr(item, f.name)) for f in fields(item)}


def _json(value: Any) -> Any:
    if isinstance(value, TimelineEntry | SequenceStep | TransferFacts | StagingFacts | Lineage | LineageOutput):
        return _plain(value)
    if isinstance(value, tuple):
        return [_json(item) for item in value]
    return value


def _with_severity_by(out: dict[str, Any], severity_by: str | None) -> dict[str, Any]:
    if severity_by is not None:
        out["severity_by"] = severity_by
    return out
