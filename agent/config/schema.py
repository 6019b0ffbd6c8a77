"""The config schema: the section dataclasses *are* the schema.

A key's type is its annotation; its description and limits are its `KeySpec` metadata. Validation
(loader.py, values.py), defaults and the default config text (writer.py) all read this one definition,
so the documented defaults cannot drift from the real ones. What each destination type takes comes from
forward/destination_types.py, the one place that knows the types.
"""

from __future__ import annotations

import os
import socket
import types
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, get_type_hints

from weightwarden.agent.forward.destination_types import (
    ALL_FORMATS,
    BULK_INDEX,
    DESTINATION_TYPES,
    HEC_ACK_MODES,
    SYSLOG_PORTS,
)
from weightwarden.agent.paths import (
    Mode,
    as_mode,
    default_data_dir,
    default_protected_roots,
    default_watch_roots,
    detect_mode,
    drop_nested,
    existing,
    unique_paths,
)

KIB = 1024
MIB = 1024 * KIB
DATABASE_NAME = "weightwarden.db"

_SPEC = "weightwarden.config.key"


@dataclass(frozen=True)
class KeySpec:
    """What a key means and which values it accepts, beyond its annotated type."""

    doc: str
    choices: tuple[str, ...] = ()
    limits: tuple[float, float] | None = None
    path: bool = False  # expand ~ and $VARS, then require an absolute path
    names: bool = False  # items are bare directory names, never paths
    example: object = None  # for a key unset by default (None): the value the default text shows, commented


def _key(
    doc: str,
    default: object = MISSING,
    *,
    factory: Any = None,
    choices: tuple[str, ...] = (),
    limits: tuple[float, float] | None = None,
    path: bool = False,
    names: bool = False,
    example: object = None,
) -> Any:
    metadata = {_SPEC: KeySpec(doc, choices, limits, path, names, example)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _default_inventory_roots() -> tuple[str, ...]:
    return tuple(default_protected_roots())


def _default_watch_roots() -> tuple[str, ...]:
    return tuple(default_watch_roots())


@dataclass(frozen=True)
class AgentSection:
    """Who the agent is and where it keeps its state."""

    mode: str = _key(
        "Per-user agent or the machine-wide one; auto means system when running as root.",
        "auto",
        choices=("auto", "user", "system"),
    )
    data_dir: str = _key("Directory for the database; empty means the default for the mode.", "", path=True)
    log_level: str = _key(
        "Least severe log level written.", "info", choices=("debug", "info", "warning", "error")
    )
    name: str = _key("Name the agent reports itself as; empty means the host name.", "")
    heartbeat_seconds: float = _key(
        "How often a heartbeat record (coverage, sensor health, backlog) is written and forwarded.", 60.0,
        limits=(0.5, 3600))
    checkpoint_seconds: float = _key(
        "How often the agent key signs the hash chain's head (also at shutdown, in agent-stopped).", 300.0,
        limits=(1, 86400))
    forward_drain_seconds: float = _key(
        "At shutdown, how long forwarders may keep delivering before the agent exits.", 2.0, limits=(0, 120))
    admin_group: str = _key(
        "Group whose members may acknowledge, resolve or mark alerts false positive (root always may).", ""
    )


@dataclass(frozen=True)
class InventorySection:
    """Which model files are protected: the roots, and (all-private) every model found anywhere by discovery
    or as a new file."""

    roots: tuple[str, ...] = _key(
        "Directories holding the models to protect; setting it replaces the defaults (in system mode every "
        "person's usual model folders and the Ollama service's store). Missing ones are skipped.",
        factory=_default_inventory_roots,
        path=True,
    )
    extra_roots: tuple[str, ...] = _key(
        "Directories added to roots, keeping the defaults: shared model folders, a team's store.", (), path=True)
    scan_on_start: bool = _key("Inventory the roots when the agent starts.", True)
    scope_seconds: float = _key(
        "How often accounts (system mode), their environment files and their usual model folders are looked "
        "at again; a new account or folder is inventoried after the next look.", 3.0, limits=(0.2, 3600))
    exclude_dirs: tuple[str, ...] = _key(
        "Directory names never descended into.",
        (".git", "node_modules", "__pycache__", ".venv", ".tox"),
        names=True,
    )
    protect: str = _key(
        "Which model files are protected. all-private: every model found (roots, discovery, new files) except "
        "public weights recognised offline (a Hugging Face hub cache blob named by its SHA-256, an Ollama library "
        "blob confirmed by its manifest; docs/design.md, Protection policy). roots: only models under the roots "
        "(and copies of them); no discovery.",
        "all-private",
        choices=("all-private", "roots"),
    )
    private_hub_orgs: tuple[str, ...] = _key(
        "Hugging Face organisations (or users) whose hub cache repos are private: their models stay protected.",
        (),
    )
    discover_roots: tuple[str, ...] = _key(
        "Trees searched for models in the background besides the homes (all-private only). "
        "Missing ones are skipped.",
        (),
        path=True,
    )
    discover_homes: bool = _key(
        "Search the homes for models in the background: every account's in system mode, your own in user mode.",
        True,
    )
    discover_network: bool = _key(
        "Let background discovery enter network filesystems (NFS, SMB, sshfs and other FUSE mounts).", False)
    discover_delay_seconds: float = _key(
        "Seconds after the agent starts before discovery begins (or resumes), so boot and login are not slowed.",
        60.0, limits=(0, 86400))
    discover_interval_seconds: float = _key(
        "Seconds between the end of one discovery pass and the start of the next (the cache makes a re-pass "
        "cost about one stat a file).",
        6 * 3600.0,
        limits=(1, 30 * 86400),
    )
    discover_files_per_second: float = _key(
        "Most files discovery looks at per second (cache hits included); 0 means no limit.", 5000.0,
        limits=(0, 10_000_000))
    discover_bytes_per_second: int = _key(
        "Most bytes discovery reads per second, averaged (a model file is hashed whole, then discovery waits); "
        "0 means no limit.", 64 * MIB, limits=(0, 1 << 40))


@dataclass(frozen=True)
class WatchSection:
    """Where copies of protected models are looked for."""

    roots: tuple[str, ...] = _key(
        "Where copies typically land, watched in addition to the inventory roots; setting it replaces the "
        "defaults (in system mode every person's Downloads, Desktop, Documents). Missing ones are skipped.",
        factory=_default_watch_roots,
        path=True,
    )
    extra_roots: tuple[str, ...] = _key("Directories added to roots, keeping the defaults.", (), path=True)
    settle_seconds: float = _key(
        "A file is examined once it has been quiet this long, or when it is closed after writing.",
        1.0,
        limits=(0.05, 60),
    )


@dataclass(frozen=True)
class ScanSection:
    """How much of a file is read to identify and fingerprint it."""

    window_bytes: int = _key(
        "Bytes read from the start of a file to identify it.", MIB, limits=(4096, 64 * MIB)
    )
    tail_bytes: int = _key(
        "Bytes read from the end of a file for its fingerprint.", 64 * KIB, limits=(0, 16 * MIB)
    )
    hash_block_bytes: int = _key("Read size when hashing a whole file.", 1 * MIB, limits=(64 * KIB, 16 * MIB))
    hash_sparse_files: bool = _key(
        # Off by default: a sparse file can claim terabytes it never stored, and hashing them is a cheap DoS.
        "Fully hash files with far fewer allocated blocks than their size.",
        False,
    )
    workers: int = _key("Threads that identify and hash files.", 4, limits=(1, 64))


@dataclass(frozen=True)
class StoreSection:
    """How events are written to the local database."""

    batch_size: int = _key("Most events written in one transaction.", 256, limits=(1, 100_000))
    flush_seconds: float = _key("Longest an event waits before its batch is written.", 0.5, limits=(0.01, 60))


@dataclass(frozen=True)
class SensorsSection:
    """Which activity sensors run besides the file sensor (each degrades cleanly without root)."""

    access: bool = _key("Report which process opens, reads or writes a protected model (fanotify, root).", True)
    hold_opens: bool = _key(
        "Hold each open of a protected model for the microseconds it takes to name the process "
        "(fanotify permission events), so even a process that exits at once is attributed.",
        True,
    )
    network: bool = _key("Report outbound connections per process, with bytes sent.", True)
    network_poll_seconds: float = _key("How often connections are listed.", 1.0, limits=(0.1, 60))
    mounts: bool = _key("Report new mounts: removable media, network shares, cloud-sync folders.", True)
    file_marks: bool = _key(
        "System mode as root: see files written anywhere, with the writer, through fanotify filesystem marks "
        "on every local filesystem (and each one mounted later); off: inotify under the watch roots only.", True)
    status_seconds: float = _key("How often the agent writes its status for `weightwarden status`.", 2.0,
                                 limits=(0.2, 300))


@dataclass(frozen=True)
class GuiSection:
    """The desktop app."""

    notify_severity: int = _key(
        "Desktop notifications for new alerts at or above this severity (0-10); 11 turns them off.",
        7,
        limits=(0, 11),
    )
    # The fleet view (docs/forwarding.md, "The fleet view"): `weightwarden-gui --central URL` overrides the URL.
    central_url: str = _key(
        "The central OpenSearch/Elasticsearch the agents forward to (http(s)://host:9200): set, the app opens "
        "the read-only fleet view of every host's alerts instead of this machine's.", "",
        example="https://search.example.com:9200")
    central_index: str = _key("The index pattern of the forwarded records (the shipped template's).",
                              "logs-weightwarden.*")
    central_username: str = _key(
        "User for the central store (HTTP basic); the password comes from WEIGHTWARDEN_CENTRAL_PASSWORD.", "")
    central_ca_file: str = _key("CA certificates for the central store's TLS certificate (PEM).", "", path=True)
    central_client_cert: str = _key("Client certificate (PEM) for a store that asks for one.", "", path=True)
    central_client_key: str = _key("The client certificate's private key (PEM).", "", path=True)
    central_server_name: str = _key("The name the store's certificate must carry (default: the URL's host).", "")


@dataclass(frozen=True)
class DetectSection:
    """Detection policy (docs/rules.md): allowlists for every rule, the egress budget, bulk collection, the
    budgets of model servers' peers (docs/serving.md)."""

    allow_processes: tuple[str, ...] = _key(
        "Executables never alerted on, as path globs; `PATH@sha256:HEX` also requires the file's SHA-256.", ())
    allow_users: tuple[str, ...] = _key("Users whose processes are never alerted on (service accounts).", ())
    allow_destinations: tuple[str, ...] = _key(
        "The organisation's own destinations, as globs: s3://bucket/*, gs://bucket/*, hf://org/*, git remotes "
        "(https://github.com/org/*), hosts and addresses (10.20.*, build.example.com).", ())
    allow_paths: tuple[str, ...] = _key("Model paths (globs) whose access is never alerted on.", ())
    # Unset (None) by default: each rule's own correlate parameter applies (docs/rules.md); when set, it
    # overrides that parameter in every rule.
    egress_ratio: float | None = _key(
        "A process tree that read protected model bytes alerts once it has sent this share of them. Unset: each "
        "egress rule's own ratio applies (the built-in rule's is 0.5).", None, limits=(0.01, 10), example=0.5)
    bulk_models: int | None = _key(
        "Distinct protected models one process tree may read within the bulk window. Unset: each bulk rule's own "
        "distinct_models applies (the built-in rule's is 5).", None, limits=(2, 100_000), example=5)
    bulk_window_seconds: float | None = _key(
        "The bulk collection window. Unset: each bulk rule's own within applies (the built-in rule's is 600 "
        "seconds).", None, limits=(1, 86_400), example=600.0)
    lineage_ratio: float | None = _key(
        "A flow that read protected model bytes alerts once the files it wrote and the bytes it sent reach this "
        "share of them, in any shape (archive, cipher, encoding, parts). Unset: the lineage rule's own ratio "
        "applies (the built-in rule's is 0.5).", None, limits=(0.01, 10), example=0.5)
    serving_bytes_per_hour: int | None = _key(
        "Answer bytes one remote peer may receive from a protected model's server in an hour (docs/serving.md). "
        "Unset: each serving-budget rule's own bytes_per_hour applies (the built-in rule's is 268435456).", None,
        limits=(1, 1 << 50), example=268435456)
    serving_bytes_per_day: int | None = _key(
        "Answer bytes one remote peer may receive from a protected model's server in a day. Unset: each "
        "serving-budget rule's own bytes_per_day applies (the built-in rule's is 1073741824).", None,
        limits=(1, 1 << 50), example=1073741824)
    serving_burst_connections: int | None = _key(
        "Connections one remote peer may open to a protected model's server within the burst window. Unset: each "
        "serving-budget rule's own burst_connections applies (the built-in rule's is 1000).", None,
        limits=(1, 10_000_000), example=1000)
    disabled_rules: tuple[str, ...] = _key("Rule ids turned off.", ())
    rule_paths: tuple[str, ...] = _key("Extra rule files or folders (*.yml) loaded with the built-in rules.", (),
                                       path=True)


@dataclass(frozen=True)
class ForwardDestination:
    """One SIEM destination, a [forward.NAME] table; any number of them. See docs/forwarding.md."""

    type: str = _key("What receives the records.", "syslog", choices=tuple(DESTINATION_TYPES))
    enabled: bool = _key("Forward to this destination (false keeps its cursor where it is).", True)
    format: str = _key("Message format; empty means the type's default, the first it takes ("
                       + "; ".join(f"{kind.name}: {', '.join(kind.formats)}" for kind in DESTINATION_TYPES.values())
                       + ").", "", choices=("", *ALL_FORMATS))
    address: str = _key("syslog: the receiver's host name or IP address.", "")
    port: int = _key("syslog: the receiver's port; 0 means "
                     + ", ".join(f"{port} for {transport}" for transport, port in SYSLOG_PORTS.items()) + ".",
                     0, limits=(0, 65535))
    transport: str = _key("syslog: tls (RFC 5425), tcp (octet counted) or udp.", "tls", choices=tuple(SYSLOG_PORTS))
    ca_file: str = _key("TLS: CA bundle that signs the receiver's certificate; empty means the system CAs.", "",
                        path=True)
    client_cert: str = _key("TLS (syslog tls, hec, bulk): client certificate (PEM) for receivers that want one.",
                            "", path=True)
    client_key: str = _key("TLS (syslog tls, hec, bulk): the client certificate's unencrypted key (PEM); empty "
                           "means client_cert holds it.", "", path=True)
    server_name: str = _key("TLS (syslog tls, hec, bulk): the name sent as SNI and that the receiver's certificate "
                            "must carry; empty means the address (syslog) or the URL's host (hec, bulk).", "")
    url: str = _key("hec: https://splunk:8088; bulk: https://elastic:9200 (the _bulk path is added).", "")
    token: str = _key("hec: the HEC token.", "")
    token_file: str = _key("hec: file holding the HEC token (instead of token).", "", path=True)
    index: str = _key(f"hec: the Splunk index; bulk: the index (default {BULK_INDEX}).", "")
    ack: str = _key("hec: indexer acknowledgement. auto: used when the endpoint offers it (an ackId in its "
                    "answer); on: required (an endpoint without it is a configuration error); off: never waited "
                    "for, a 200 counts as delivered. Without it a lost answer can index a record twice: "
                    "de-duplicate on the weightwarden_id field.", "auto", choices=HEC_ACK_MODES)
    username: str = _key("bulk: user for basic authentication.", "")
    password: str = _key("bulk: password for basic authentication.", "")
    api_key: str = _key("bulk: an Elasticsearch API key (sent as ApiKey).", "")
    verify_tls: bool = _key("https: check the server certificate (hec, bulk).", True)
    path: str = _key("file: the JSON-lines file written.", "", path=True)
    max_bytes: int = _key("file: rotate when the file reaches this size.", 100 * MIB, limits=(4096, 1 << 40))
    keep: int = _key("file: rotated files kept (name.1 ... name.N).", 5, limits=(1, 1000))
    batch_size: int = _key("Most records sent in one batch.", 500, limits=(1, 50_000))
    start: str = _key("Where a new destination starts: the beginning of the log or its end.", "beginning",
                      choices=("beginning", "end"))
    retry_initial_seconds: float = _key("First wait after a failure; doubles (with jitter) up to the maximum.",
                                        1.0, limits=(0.01, 3600))
    retry_max_seconds: float = _key("Longest wait between attempts.", 300.0, limits=(0.1, 86400))
    timeout_seconds: float = _key("Network timeout for one attempt.", 15.0, limits=(0.1, 600))
    resend_window_seconds: float = _key(
        "syslog tcp/tls: a record counts as delivered once TCP-acknowledged and the connection stayed up this "
        "long after; anything newer is resent after a reconnect.", 2.0, limits=(0, 600))
    backlog_max_mb: float = _key(
        "Disk budget, in MiB of stored records not yet delivered here; over it the oldest are skipped and an "
        "explicit events-dropped record says how many.", 2048.0, limits=(0.001, 1 << 24))
    name: str = ""  # the NAME of [forward.NAME]; not a key
    managed: bool = False  # from the app's drop-in (MANAGED_DESTINATIONS in the data dir); not a key
    # Where each key was set, as (key, "file:line"), so errors found later (an unreadable client_cert when the
    # agent connects) say where to fix them; not a key, and no part of a comparison.
    located: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    def where(self, key: str) -> str:
        """The "file:line" that set `key`, or ""."""
        return next((place for name, place in self.located if name == key), "")


# --------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Config:
    """The agent's settings: sections as written (validated, paths expanded) plus resolved helpers.

    Mode precedence: the mode the caller asked for (`load_config(mode=...)`), else [agent] mode when not
    "auto", else `detect_mode()`. Data dir: [agent] data_dir, else $WEIGHTWARDEN_DATA_DIR, else the mode's
    default.
    """

    agent: AgentSection = field(default_factory=AgentSection, metadata={"section": True})
    inventory: InventorySection = field(default_factory=InventorySection, metadata={"section": True})
    watch: WatchSection = field(default_factory=WatchSection, metadata={"section": True})
    scan: ScanSection = field(default_factory=ScanSection, metadata={"section": True})
    store: StoreSection = field(default_factory=StoreSection, metadata={"section": True})
    sensors: SensorsSection = field(default_factory=SensorsSection, metadata={"section": True})
    gui: GuiSection = field(default_factory=GuiSection, metadata={"section": True})
    detect: DetectSection = field(default_factory=DetectSection, metadata={"section": True})
    forward: tuple[ForwardDestination, ...] = ()  # [forward.NAME] tables, in file order
    source: str | None = None  # the file read, None when these are the built-in defaults
    requested_mode: Mode | None = None
    # "section.key" for every key the file sets. A roots key set in the file replaces the usual places
    # (agent/scope/scope.py); equal values mean equal settings, so it takes no part in comparisons.
    explicit: frozenset[str] = field(default=frozenset(), compare=False)

    def is_set(self, section: str, key: str) -> bool:
        """Whether the config file sets [section] key (False for the built-in defaults)."""
        return f"{section}.{key}" in self.explicit

    @property
    def mode(self) -> Mode:
        if self.requested_mode is not None:
            return self.requested_mode
        if self.agent.mode != "auto":
            return as_mode(self.agent.mode)
        return detect_mode()

    @property
    def data_dir(self) -> str:
        if self.agent.data_dir:
            return os.path.abspath(self.agent.data_dir)
        return default_data_dir(self.mode)

    @property
    def database_path(self) -> str:
        return os.path.join(self.data_dir, DATABASE_NAME)

    @property
    def agent_name(self) -> str:
        return self.agent.name or socket.gethostname()

    @property
    def protected_roots(self) -> list[str]:
        """Inventory roots that exist now; computed on each call because roots appear and vanish.

        The config's own roots only (the running user's places by default): what the agent protects is
        its Scope (agent/scope), which in system mode lists every person's places instead."""
        return existing(unique_paths([*self.inventory.roots, *self.inventory.extra_roots]))

    @property
    def watch_roots(self) -> list[str]:
        """Every existing directory to watch for copies, without roots already covered by an outer one."""
        candidates = [*self.protected_roots, *self.watch.roots, *self.watch.extra_roots]
        return drop_nested(existing(unique_paths(candidates)))


def default_config(*, mode: str | None = None) -> Config:
    """The built-in defaults, as `load_config` returns them when there is no config file."""
    return Config(requested_mode=requested_mode(mode))


@dataclass(frozen=True)
class SchemaKey:
    name: str
    hint: Any  # the annotation: str, bool, int, float or tuple[str, ...] (without `| None`)
    spec: KeySpec
    optional: bool = False  # annotated `X | None`: unset (None) unless the file sets it


def _schema_keys(section: type) -> dict[str, SchemaKey]:
    hints = get_type_hints(section)
    keys = {}
    for item in fields(section):
        if _SPEC not in item.metadata:
            continue
        hint, optional = hints[item.name], False
        if isinstance(hint, types.UnionType) and type(None) in hint.__args__:
            (hint,), optional = [arg for arg in hint.__args__ if arg is not type(None)], True
        keys[item.name] = SchemaKey(item.name, hint, item.metadata[_SPEC], optional)
    return keys


# [section] name -> its dataclass, and -> its keys; the keys of a [forward.NAME] table.
SECTIONS: dict[str, Any] = {
    item.name: get_type_hints(Config)[item.name] for item in fields(Config) if item.metadata.get("section")
}
SCHEMA: dict[str, dict[str, SchemaKey]] = {name: _schema_keys(section) for name, section in SECTIONS.items()}
FORWARD_KEYS: dict[str, SchemaKey] = _schema_keys(ForwardDestination)


def requested_mode(mode: str | None) -> Mode | None:
    return None if mode is None else as_mode(mode)
