"""The one vocabulary of the program: frozen dataclasses for everything sensors see and rules decide.

Sensors, detection, the store, forwarders and the app all speak these types. Field names follow the
Elastic Common Schema (ECS) where one exists; `to_dict()` renders the nested ECS shape
(`file.path`, `process.pid`, `event.action`, ...) that the store and the JSON outputs use.

Ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds first, so ids sort by time as strings.
Timestamps are UTC with millisecond precision. Every record also carries a per-agent monotonic
sequence number (assigned by the store as it accepts the record), so a gap or reordering is visible
even when clocks jump.
"""

from __future__ import annotations

import builtins
import os
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from weightwarden.agent.alert_evidence import AlertEvidence, RuleMatchEvidence

# --------------------------------------------------------------------------- ids, clocks, sequence

class UuidV7Generator:
    """UUIDv7 strings that strictly increase for one generator, even within one millisecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0
        self._pool = b""  # random bytes from the OS, 4 KiB at a time: one system call per 512 ids
        self._offset = 0
        self._pid = 0  # a forked child must not reuse its parent's bytes

    def __call__(self, now_ms: int | None = None) -> str:
        with self._lock:
            ms = int(time.time() * 1000) if now_ms is None else now_ms
            random = self._random64()
            if ms <= self._last_ms:
                # Same (or earlier, after a clock step) millisecond: keep the timestamp and bump a 12-bit
                # counter in rand_a so the order holds (RFC 9562 section 6.2, method 1).
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:
                    ms += 1
                    self._counter = 0
            else:
                self._counter = random & 0x7FF  # random start, with headroom for increments
            self._last_ms = ms
            counter = self._counter
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= random >> 2  # 62 random bits (the low 11 also seeded the counter: they are not reused alone)
        return str(uuid.UUID(int=value))

    def _random64(self) -> int:
        if self._offset >= len(self._pool) or self._pid != os.getpid():
            self._pool, self._offset, self._pid = os.urandom(4096), 0, os.getpid()
        value = int.from_bytes(self._pool[self._offset:self._offset + 8], "big")
        self._offset += 8
        return value


_ids = UuidV7Generator()


def new_id() -> str:
    """A new UUIDv7 for a record; ids made by one agent sort in the order they were made."""
    return _ids()


def id_time_ms(event_id: str) -> int:
    """The Unix milliseconds embedded in a UUIDv7."""
    return uuid.UUID(event_id).int >> 80


def utc_now() -> datetime:
    """Now, in UTC, truncated to milliseconds (what we store and forward)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds: 2026-11-29T16:22:37.123Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 time; a naive time is taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- paths

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def display_path(path: str | bytes) -> str:
    """A path as text that always encodes as UTF-8 and is safe to print: undecodable bytes become \\xNN
    escapes, and so do control characters (a name holding a newline or a terminal escape sequence must not
    forge a line in a log or repaint a reviewer's terminal); C1 controls become \\u0080-\\u009f."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x80 else f"\\u{ord(m[0]):04x}", text)


def raw_path_hex(path: str | bytes) -> str | None:
    """Hex of the path's bytes when display_path() had to escape them, else None (lossless record)."""
    raw = os.fsencode(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.hex()
    return raw.hex() if _CONTROL.search(text) else None


# --------------------------------------------------------------------------- vocabulary

class Category(StrEnum):
    """ECS event.category values we use."""

    FILE = "file"
    PROCESS = "process"
    NETWORK = "network"
    HOST = "host"
    INTRUSION_DETECTION = "intrusion_detection"


class Action(StrEnum):
    """event.action: what happened. File actions mirror what the file sensor can observe."""

    MODEL_DISCOVERED = "model-discovered"
    MODEL_CREATED = "model-created"
    MODEL_MODIFIED = "model-modified"
    MODEL_MOVED = "model-moved"
    MODEL_DELETED = "model-deleted"
    SCAN_FINISHED = "scan-finished"
    DISCOVERY_FINISHED = "discovery-finished"  # a background discovery pass over the homes and trees ended
    AGENT_STARTED = "agent-started"
    AGENT_STOPPED = "agent-stopped"
    SENSOR_HEALTH = "sensor-health"
    SCAN_ERROR = "scan-error"
    # Evidence and delivery (issue 6): these are stored, chained and forwarded like every other record.
    CHAIN_CHECKPOINT = "chain-checkpoint"  # the agent key's signature over the chain head
    HEARTBEAT = "heartbeat"  # periodic: coverage, sensor health, backlog; a gap means a stopped agent
    EVENTS_DROPPED = "events-dropped"  # a destination's backlog budget forced records to be skipped
    FORWARD_HEALTH = "forward-health"  # a destination failed in a way that needs a person (401/403, TLS)
    # Who touches a model (issue 4): access sensor (fanotify), network and mount sensors.
    MODEL_OPENED = "model-opened"  # a process opened a protected model file
    MODEL_READ = "model-read"  # ... and closed it without writing: bytes read, mapped or read sequentially
    MODEL_WRITTEN = "model-written"  # ... and closed it after writing
    MODEL_HELD = "model-held"  # user mode: a process found holding a model file open after a file event
    NETWORK_CONNECTION = "network-connection"  # an outbound connection by a process, with bytes sent
    MOUNT_ADDED = "mount-added"  # a new mount: removable media, network share, cloud-sync, local
    MOUNT_REMOVED = "mount-removed"
    # Posture (issue 5): a standing weakness of a protected model found during a scan (agent/detect/posture.py).
    POSTURE_FINDING = "posture-finding"
    # Review (issue 7): a justification or status change made through the control socket, by peer uid.
    ALERT_REVIEWED = "alert-reviewed"
    # Scope (issue 13): accounts or their model folders appeared or went; names users and roots added/removed.
    SCOPE_CHANGED = "scope-changed"
    # Evidence (issue 15): a process other than the agent opened its database, journal, key or config for writing.
    EVIDENCE_WRITTEN = "evidence-written"
    # Audit (issue 17): the summary of `weightwarden audit --record` (agent/audit/record.py), weekly by a timer.
    AUDIT_SUMMARY = "audit-summary"
    # Access policy (issue 17, agent/access/grants.py): requests, time-boxed grants, their end, break-glass.
    ACCESS_REQUESTED = "access-requested"
    ACCESS_REFUSED = "access-refused"  # an admin turned a request down, with a note (agent/control_access.py)
    ACCESS_GRANTED = "access-granted"
    ACCESS_REVOKED = "access-revoked"
    ACCESS_GRANT_EXPIRED = "access-grant-expired"
    ACCESS_BREAK_GLASS = "access-break-glass"
    # Enforcement (issue 17, agent/access/gate.py): the answer to one open of a protected model under a policy.
    # details.decision = {policy, reason, access, enforced, grant, break_glass}; process and file as for opens.
    ACCESS_DENIED = "access-denied"  # enforce mode: the open failed with EPERM
    ACCESS_WOULD_DENY = "access-would-deny"  # monitor mode: the policy says no, the open went ahead
    ACCESS_BREAK_GLASS_OPEN = "access-break-glass-open"  # root opened a model only because break-glass is open
    ACCESS_FAIL_OPEN = "access-fail-open"  # opens allowed undecided (deadline, overload, internal error)
    # Sealing at rest (issue 17, agent/seal, docs/sealing.md). model-sealed: a model file replaced by its sealed
    # form (the inventory saw it); model-unsealed: the agent unsealed one for a caller the policy allows;
    # unseal-refused: it refused. details.unseal = {decision, caller, sealed}; process is the caller.
    MODEL_SEALED = "model-sealed"
    MODEL_UNSEALED = "model-unsealed"
    UNSEAL_REFUSED = "unseal-refused"
    # Model servers (issue 20, agent/serving, docs/serving.md): a process with a protected model loaded
    # listens (details.server: address, port, reach, protocol, authenticated), stops listening, and what each
    # remote peer asked of it (details.peer, connections, bytes_received, bytes_sent: cumulative).
    MODEL_SERVED = "model-served"
    MODEL_SERVING_STOPPED = "model-serving-stopped"
    SERVING_TRAFFIC = "serving-traffic"


@dataclass(frozen=True, slots=True)
class FileInfo:
    """ECS file.*: a file as observed. `format` is a FORMATS.md id (ECS has no field for it)."""

    path: str
    size: int | None = None
    format: str | None = None
    sha256: str | None = None
    quick_fingerprint: str | None = None
    inode: int | None = None
    device: int | None = None
    mtime_ns: int | None = None
    path_hex: str | None = None  # raw bytes of a non-UTF-8 name, so nothing about it is lost

    @classmethod
    def at(cls, path: str | bytes, **fields: Any) -> FileInfo:
        return cls(path=display_path(path), path_hex=raw_path_hex(path), **fields)


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """One ancestor in a process's parent chain (ECS process.parent.*, flattened into a list)."""

    pid: int
    name: str | None = None
    executable: str | None = None
    command_line: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """ECS process.*: who did it, when known."""

    pid: int
    name: str | None = None
    executable: str | None = None
    command_line: str | None = None
    user: str | None = None
    uid: int | None = None
    ppid: int | None = None
    session_id: int | None = None
    parents: tuple[ProcessRef, ...] = ()  # parent first, up to the session leader
    exited: bool | None = None  # True: attributed from the process cache after the process had gone
    # What this process did to the file of the event (access sensor): bytes read and how.
    bytes_read: int | None = None
    mapped: bool | None = None  # memory-mapped (inference, training loaders) rather than read() (copies)
    # The process that opened the file, when another one read it: a shell's redirection (`gpg < model`: the
    # shell opened, then exec'd gpg in the same pid) or a descriptor inherited by a child.
    opened_by: ProcessRef | None = None
    # What the process is, whatever it is called (agent/executables.py): the executable's SHA-256 (of the file
    # the kernel runs, /proc/<pid>/exe); the program actually run (the one `ld.so PROGRAM` loads, else the
    # executable) and its SHA-256; for an interpreter (a file that is CPython, a shell...), the script it runs.
    executable_sha256: str | None = None
    program: str | None = None
    program_sha256: str | None = None
    interpreter: str | None = None  # the language: python | shell | perl | ruby | node
    script: str | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    """ECS destination.* plus where a copy landed: kind is removable, network-share, cloud-sync,
    disk-image (inside a mounted image file), temporary, local, network."""

    kind: str
    address: str | None = None
    port: int | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One observation worth recording (ECS event.kind=event)."""

    action: Action
    category: Category
    message: str
    file: FileInfo | None = None
    previous_path: str | None = None  # for moves
    model: str | None = None
    process: ProcessInfo | None = None
    severity: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    time: datetime = field(default_factory=utc_now)
    sequence: int = 0  # assigned by the store when the record is accepted

    kind = "event"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": format_time(self.time),
            "sequence": self.sequence,
            "event": {"kind": self.kind, "action": str(self.action), "category": str(self.category),
                      "severity": self.severity},
            "message": self.message,
            "file": _clean(asdict(self.file)) if self.file else None,
            "previous_path": self.previous_path,
            "model": self.model,
            "process": _clean(asdict(self.process)) if self.process else None,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class Alert:
    """A detection rule's verdict (ECS event.kind=alert): one per incident, with its evidence."""

    rule_id: str
    title: str
    severity: int  # 0..10, as CEF wants it
    message: str
    paths: tuple[str, ...] = ()
    model: str | None = None
    process: ProcessInfo | None = None
    destination: Destination | None = None
    evidence: AlertEvidence = field(default_factory=RuleMatchEvidence)  # typed: agent/alert_evidence.py
    event_ids: tuple[str, ...] = ()  # the events that caused it
    id: str = field(default_factory=new_id)
    time: datetime = field(default_factory=utc_now)
    sequence: int = 0
    status: str = "open"

    kind = "alert"

    def __post_init__(self) -> None:
        if not 0 <= self.severity <= 10:
            raise ValueError(f"alert severity must be 0..10, got {self.severity}")
        if not isinstance(self.evidence, AlertEvidence):
            raise TypeError(f"alert evidence must be an AlertEvidence (agent/alert_evidence.py), got "
                            f"{type(self.evidence).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": format_time(self.time),
            "sequence": self.sequence,
            "rule": self.rule_id,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "status": self.status,
            "paths": list(self.paths),
            "model": self.model,
            "process": _clean(asdict(self.process)) if self.process else None,
            "destination": _clean(asdict(self.destination)) if self.destination else None,
            "evidence": self.evidence.to_dict(),
            "event_ids": list(self.event_ids),
        }


def _clean(mapping: dict[str, Any]) -> dict[str, Any]:
    """Drop unset (None, or an empty tuple) fields so records stay small and readable."""
    return {key: (value if not isinstance(value, tuple) else [_clean(v) if isinstance(v, dict) else v
                                                               for v in value])
            for key, value in mapping.items() if value is not None and value != ()}


Record = Event | Alert


@dataclass(frozen=True, slots=True)
class TensorPrint:
    """One tensor's content fingerprint, independent of its name, container, shard and float dtype.

    `fingerprint` identifies the values; `elements` is the tensor's element count; `bytes` what it takes in
    the file it was read from; `informative` is False for tensors too uniform to tell models apart (all
    zeros, all ones, all one sign): they count in shares but never make a match on their own.
    """

    fingerprint: str
    elements: int
    bytes: int
    informative: bool = True
    # The tensor's name in the file it was read from (the alert says which tensors matched), and its
    # similarity block: the values of its top-left corner (fingerprint/blocks.py); b"" for 1-D tensors.
    name: str = ""
    block: builtins.bytes = b""  # `bytes` is the field above


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where the agent found a model file and whether (and why) it protects it (agent/models/protection.py).

    `found_by`: "protected-root" (under a configured root, whoever met it first), "discovery" (a background
    pass, `pass_number`), "file-event" (a new or changed file the sensors reported) or "scan" (a rescan of
    a watched folder); `where`: the root or discovery root it was found under, when there is one.
    `protected` False: recorded (so its copies are recognised) but not guarded; `reason` says why either way.
    """

    found_by: str
    where: str | None = None
    pass_number: int | None = None
    protected: bool = True
    reason: str = ""

    def describe(self) -> str:
        """"discovery pass 3 under /home", "protected root /home/ana/models", "a new file written"."""
        if self.found_by == "discovery":
            return f"discovery pass {self.pass_number} under {self.where}" if self.where else "discovery"
        if self.found_by == "protected-root":
            return f"protected root {self.where}" if self.where else "protected root"
        if self.found_by == "file-event":
            return "a new file written"
        return f"rescan of {self.where}" if self.where else self.found_by


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of the inventory: a model artifact at a path, with what identifies it.

    `path` is the file's identity: its raw bytes as a str (os.fsdecode: undecodable bytes become surrogates),
    so it opens, stats and matches what the sensors report whatever the name. It is never shown or stored as
    text: `shown` is the display form, `path_hex` the raw bytes of a name that is not UTF-8.
    """

    path: str
    format: str
    size: int
    model: str
    sha256: str | None = None
    quick_fingerprint: str | None = None
    device: int | None = None
    inode: int | None = None
    mtime_ns: int | None = None
    path_hex: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # Tensor-level fingerprints (weightwarden.agent.fingerprint.tensors): they recognise a converted,
    # re-sharded, cast or partial copy. Empty when the format has none or the file was not read whole.
    tensors: tuple[TensorPrint, ...] = ()
    # Set by the inventory's protection policy when the file is accepted; None: not decided (a bare scan) or
    # recorded before provenance was kept (then it is protected, as everything inventoried was).
    provenance: Provenance | None = None

    @property
    def protected(self) -> bool:
        return self.provenance is None or self.provenance.protected

    @property
    def public(self) -> bool:
        """Public weights (agent/models/protection.py): a hub-cache or Ollama-library file, or a copy of one."""
        return self.provenance is not None and self.provenance.reason.startswith("public: ")

    @property
    def shown(self) -> str:
        return display_path(self.path)

    def file_info(self) -> FileInfo:
        """ECS file.* of this model file, for the records that name it."""
        return FileInfo(path=self.shown, size=self.size, format=self.format, sha256=self.sha256,
                        quick_fingerprint=self.quick_fingerprint, inode=self.inode, device=self.device,
                        mtime_ns=self.mtime_ns, path_hex=raw_path_hex(self.path))

    def to_dict(self) -> dict[str, Any]:
        """The `scan --json` contract: path, format, size, sha256, quick_fingerprint, model (+ details)."""
        return {"path": self.shown, "format": self.format, "size": self.size, "sha256": self.sha256,
                "quick_fingerprint": self.quick_fingerprint, "model": self.model,
                **({"path_hex": self.path_hex} if self.path_hex else {}), "details": self.details}
