"""Load, check and describe the agent's TOML configuration.

The section dataclasses below *are* the schema: a key's type is its annotation, its description and
limits are its `KeySpec` metadata. Validation, defaults and `default_config_text()` all read that one
definition, so the documented defaults cannot drift from the real ones.

Every problem in a file is reported in one pass, each with file and line (STYLE.md §5). tomllib gives no
positions for values, so `_key_lines` finds them with a small line scanner. Its limits, accepted because
they only change where a message points: a key's line is its first appearance; a key inside an inline
table points at the line of the table's own key; a line holding a header and a key is not split.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import math
import os
import socket
import stat
import textwrap
import tomllib
import types
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields
from datetime import date, datetime, time
from typing import Any, get_type_hints

from weightwarden.agent import config_migrations
from weightwarden.agent.paths import (
    CONFIG_ENV,
    Mode,
    as_mode,
    default_config_file,
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

# ----------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file, located as precisely as we can."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """A config file could not be used; `problems` lists every reason found, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


# ------------------------------------------------------------------------------------------------- schema

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
    """Which model files are protected: every model file found under the roots is inventoried."""

    roots: tuple[str, ...] = _key(
        "Directories holding the models to protect; setting it replaces the defaults. "
        "Missing ones are skipped.",
        factory=_default_inventory_roots,
        path=True,
    )
    extra_roots: tuple[str, ...] = _key("Directories added to roots, keeping the defaults.", (), path=True)
    scan_on_start: bool = _key("Inventory the roots when the agent starts.", True)
    exclude_dirs: tuple[str, ...] = _key(
        "Directory names never descended into.",
        (".git", "node_modules", "__pycache__", ".venv", ".tox"),
        names=True,
    )


@dataclass(frozen=True)
class WatchSection:
    """Where copies of protected models are looked for."""

    roots: tuple[str, ...] = _key(
        "Where copies typically land, watched in addition to the inventory roots. Missing ones are skipped.",
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


@dataclass(frozen=True)
class DetectSection:
    """Detection policy (docs/rules.md): allowlists for every rule, the egress budget, bulk collection."""

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
    disabled_rules: tuple[str, ...] = _key("Rule ids turned off.", ())
    rule_paths: tuple[str, ...] = _key("Extra rule files or folders (*.yml) loaded with the built-in rules.", (),
                                       path=True)


FORWARD_TYPES = ("syslog", "hec", "bulk", "file")
FORWARD_FORMATS = {"syslog": ("cef", "leef"), "hec": ("native", "ecs", "ocsf"), "bulk": ("ecs", "native", "ocsf"),
                   "file": ("ecs", "ocsf", "native")}


@dataclass(frozen=True)
class ForwardDestination:
    """One SIEM destination, a [forward.NAME] table; any number of them. See docs/forwarding.md."""

    type: str = _key("What receives the records.", "syslog", choices=FORWARD_TYPES)
    enabled: bool = _key("Forward to this destination (false keeps its cursor where it is).", True)
    format: str = _key("Message format; empty means the type's default (syslog: cef; hec: native; bulk and "
                       "file: ecs). syslog takes cef or leef; the others native, ecs or ocsf.", "",
                       choices=("", "cef", "leef", "native", "ecs", "ocsf"))
    address: str = _key("syslog: the receiver's host name or IP address.", "")
    port: int = _key("syslog: the receiver's port; 0 means 6514 for tls, 514 otherwise.", 0, limits=(0, 65535))
    transport: str = _key("syslog: tls (RFC 5425), tcp (octet counted) or udp.", "tls", choices=("tls", "tcp", "udp"))
    ca_file: str = _key("TLS: CA bundle that signs the receiver's certificate; empty means the system CAs.", "",
                        path=True)
    client_cert: str = _key("TLS: client certificate (PEM) for receivers that want one.", "", path=True)
    client_key: str = _key("TLS: the client certificate's key (PEM).", "", path=True)
    server_name: str = _key("TLS: the name the receiver's certificate must carry; empty means address/url host.",
                            "")
    url: str = _key("hec: https://splunk:8088; bulk: https://elastic:9200 (the _bulk path is added).", "")
    token: str = _key("hec: the HEC token.", "")
    token_file: str = _key("hec: file holding the HEC token (instead of token).", "", path=True)
    index: str = _key("hec: the Splunk index; bulk: the index (default weightwarden-events).", "")
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
        """Inventory roots that exist now; computed on each call because roots appear and vanish."""
        return existing(unique_paths([*self.inventory.roots, *self.inventory.extra_roots]))

    @property
    def watch_roots(self) -> list[str]:
        """Every existing directory to watch for copies, without roots already covered by an outer one."""
        candidates = [*self.protected_roots, *self.watch.roots, *self.watch.extra_roots]
        return drop_nested(existing(unique_paths(candidates)))


def default_config(*, mode: str | None = None) -> Config:
    """The built-in defaults, as `load_config` returns them when there is no config file."""
    return Config(requested_mode=_requested_mode(mode))


@dataclass(frozen=True)
class _Key:
    name: str
    hint: Any  # the annotation: str, bool, int, float or tuple[str, ...] (without `| None`)
    spec: KeySpec
    optional: bool = False  # annotated `X | None`: unset (None) unless the file sets it


def _schema_keys(section: type) -> dict[str, _Key]:
    hints = get_type_hints(section)
    keys = {}
    for item in fields(section):
        hint, optional = hints[item.name], False
        if isinstance(hint, types.UnionType) and type(None) in hint.__args__:
            (hint,), optional = [arg for arg in hint.__args__ if arg is not type(None)], True
        keys[item.name] = _Key(item.name, hint, item.metadata[_SPEC], optional)
    return keys


_SECTIONS: dict[str, Any] = {
    item.name: get_type_hints(Config)[item.name] for item in fields(Config) if item.metadata.get("section")
}
_SCHEMA: dict[str, dict[str, _Key]] = {name: _schema_keys(section) for name, section in _SECTIONS.items()}

# --------------------------------------------------------------------------------------------------- public


def load_config(path: str | os.PathLike[str] | None = None, *, mode: str | None = None) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem.

    With no path, the default file for the mode is read, and the built-in defaults are returned when it
    does not exist. A file named explicitly (argument or $WEIGHTWARDEN_CONFIG) must exist: a typo in its
    name must not silently turn into default settings.
    """
    requested = _requested_mode(mode)
    if path is None:
        path = default_config_file(requested or detect_mode())
        if not os.environ.get(CONFIG_ENV) and not os.path.lexists(path):
            return _raise_problems(_with_managed(Config(requested_mode=requested)))
    config, problems = _load_file(os.fspath(path), requested)
    if config is None:
        raise ConfigError(problems)
    return _raise_problems(_with_managed(config))


def check_config(path: str | os.PathLike[str]) -> list[ConfigProblem]:
    """Every problem in the file (empty when it is fine); never raises for bad content."""
    config, problems = _load_file(os.fspath(path), None)
    return problems if config is None else _with_managed(config)[1]


# Destinations configured from the app: the agent writes [forward.NAME] tables to this file in its data dir
# (where a hardened service may write; 0640, it may hold credentials) and every load merges them after the
# config file's own, checked by the same schema and reported with file and line the same way.
MANAGED_DESTINATIONS = "destinations.toml"


def managed_destinations_file(config: Config) -> str:
    return os.path.join(config.data_dir, MANAGED_DESTINATIONS)


def check_managed_destinations(file: str, text: str, reserved: Iterable[str] = ()
                               ) -> tuple[tuple[ForwardDestination, ...], list[ConfigProblem]]:
    """The destinations of a managed drop-in's text and every problem in it; `reserved` are the names the
    config file itself defines (a drop-in may not redefine them)."""
    document = _parse(file, text)
    if isinstance(document, ConfigProblem):
        return (), [document]
    problems = _Problems(file, text)
    found: tuple[ForwardDestination, ...] = ()
    for name, table in document.items():
        if name == "forward":
            found = _forward_destinations(table, problems)
        else:
            problems.add((name,), f"only [forward.NAME] tables belong in {file} (the agent writes it for the app); "
                                  f"found {name!r}")
    taken = set(reserved)
    for destination in found:
        if destination.name in taken:
            problems.add(("forward", destination.name), f"[forward.{destination.name}] is already defined in the "
                                                        "config file; edit it there")
    return tuple(dataclasses.replace(d, managed=True) for d in found), problems.in_file_order()


def managed_destinations_text(tables: dict[str, dict[str, Any]]) -> str:
    """The drop-in's text for these [forward.NAME] tables (values: str, bool, int or float)."""
    lines = ["# Written by the Weightwarden agent for destinations configured from the app; edits here are",
             "# replaced by the next change made in the app. The agent's config file is the place for your own."]
    for name, values in tables.items():
        lines.extend(["", f"[forward.{_toml_key(name)}]"])
        lines.extend(f"{_toml_key(key)} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if key and all(ch in _BARE_KEY_CHARS for ch in key) else _toml_value(key)


def _with_managed(config: Config) -> tuple[Config, list[ConfigProblem]]:
    file = managed_destinations_file(config)
    if not os.path.lexists(file) or not os.access(file, os.R_OK):
        return config, []  # none made yet; or another user's tool, which the drop-in's 0640 keeps out
    try:
        data = _read_bytes(file)
    except OSError as error:
        return config, [ConfigProblem(file, None, f"cannot read: {error.strerror or error}")]
    text = _decode(file, data)
    if isinstance(text, ConfigProblem):
        return config, [text]
    found, problems = check_managed_destinations(file, text, (d.name for d in config.forward))
    return dataclasses.replace(config, forward=config.forward + found), problems


def _raise_problems(loaded: tuple[Config, list[ConfigProblem]]) -> Config:
    config, problems = loaded
    if problems:
        raise ConfigError(problems)
    return config


def default_config_text(*, commented: bool = True) -> str:
    """A TOML document listing every key with its default and description, generated from the schema.

    With `commented=False` the assignments are live instead of commented out; both load as the defaults.
    """
    header = [
        "# Weightwarden agent configuration.",
        "#",
        "# Every key is listed with its built-in default; uncomment a line to change it.",
        "# Paths accept ~ and $VARS and must be absolute. Unknown sections and keys are errors.",
        "",
        f"{config_migrations.FORMAT_KEY} = {config_migrations.CURRENT_FORMAT}  # the file format (never edit by hand)",
        "",
        "",
    ]
    sections = [_section_text(name, section, commented) for name, section in _SECTIONS.items()]
    return "\n".join(header) + "\n".join(sections) + _forward_example_text()


def _forward_example_text() -> str:
    """SIEM destinations: always commented (a live one would forward); docs/forwarding.md has examples."""
    lines = ["", "# [forward.NAME]", f"# {_first_line(ForwardDestination.__doc__)}",
             "# Any number of destinations, each its own table; for example [forward.siem]."]
    defaults = ForwardDestination()
    for key in _FORWARD_KEYS.values():
        lines.append("#")
        lines.extend(f"# {line}" for line in textwrap.wrap(key.spec.doc, 104))
        lines.append(f"# ({_rules_text(key)})")
        lines.extend("# " + line for line in _assignment(key.name, getattr(defaults, key.name)))
    return "\n".join(lines) + "\n"


def _requested_mode(mode: str | None) -> Mode | None:
    return None if mode is None else as_mode(mode)


# ------------------------------------------------------------------------------------------ reading a file


def _load_file(file: str, requested: Mode | None) -> tuple[Config | None, list[ConfigProblem]]:
    try:
        data = _read_bytes(file)
    except OSError as error:
        return None, [ConfigProblem(file, None, f"cannot read config file: {error.strerror or error}")]
    text = _decode(file, data)
    if isinstance(text, ConfigProblem):
        return None, [text]
    document = _parse(file, text)
    if isinstance(document, ConfigProblem):
        return None, [document]
    return _build(file, text, document, requested)


def _read_bytes(file: str) -> bytes:
    # O_NONBLOCK: a FIFO given as the config must not hang the agent waiting for a writer.
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", file)
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", file)
        os.set_blocking(fd, True)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _decode(file: str, data: bytes) -> str | ConfigProblem:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - line_start + 1
        return ConfigProblem(
            file, line, f"not valid UTF-8: byte 0x{data[error.start]:02x} at column {column}"
        )
    # Some Windows editors start UTF-8 files with a BOM; TOML does not allow it but it is harmless.
    return text.removeprefix("\ufeff")


def _parse(file: str, text: str) -> dict[str, Any] | ConfigProblem:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return _syntax_problem(file, text, str(error))


def _syntax_problem(file: str, text: str, message: str) -> ConfigProblem:
    # tomllib puts the position only into the message: "Invalid value (at line 3, column 7)".
    detail, _, position = message.rpartition(" (at ")
    if not detail:
        return ConfigProblem(file, None, f"invalid TOML: {message}")
    position = position.rstrip(")")
    if position == "end of document":
        return ConfigProblem(
            file, text.rstrip("\n").count("\n") + 1, f"invalid TOML: {detail} (at end of file)"
        )
    line, _, column = position.removeprefix("line ").partition(", column ")
    if not line.isdigit():
        return ConfigProblem(file, None, f"invalid TOML: {message}")
    return ConfigProblem(file, int(line), f"invalid TOML: {detail} (column {column})")


# ---------------------------------------------------------------------------------------------- validation


class _Problems:
    """Collects messages for one file and locates each by its key path."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.found: list[ConfigProblem] = []
        self._lines = _key_lines(text)

    def add(self, where: tuple[str, ...], message: str) -> None:
        self.found.append(ConfigProblem(self.file, _line_of(self._lines, where), message))

    def in_file_order(self) -> list[ConfigProblem]:
        return sorted(self.found, key=lambda problem: problem.line or 0)


def _build(
    file: str, text: str, document: dict[str, Any], requested: Mode | None
) -> tuple[Config | None, list[ConfigProblem]]:
    problems = _Problems(file, text)
    sections: dict[str, Any] = {}
    for name, table in document.items():
        if name == config_migrations.FORMAT_KEY:  # the file format number (config_migrations.py)
            if (refused := config_migrations.format_problem(table)) is not None:
                problems.add((name,), refused)
        elif name == "forward":
            sections["forward"] = _forward_destinations(table, problems)
        elif name not in _SECTIONS:
            problems.add((name,), _unknown_top_level(name, table))
        elif not isinstance(table, dict):
            problems.add((name,), f"[{name}] must be a table, got {_type_name(table)}")
        else:
            sections[name] = _SECTIONS[name](**_section_values(name, table, problems))
    if problems.found:
        return None, problems.in_file_order()
    return Config(**sections, source=file, requested_mode=requested), []


_FORWARD_KEYS = {item.name: _Key(item.name, get_type_hints(ForwardDestination)[item.name], item.metadata[_SPEC])
                 for item in fields(ForwardDestination) if _SPEC in item.metadata}
_FORWARD_NEEDS = {"syslog": ("address",), "hec": ("url",), "bulk": ("url",), "file": ("path",)}


def _forward_destinations(table: object, problems: _Problems) -> tuple[ForwardDestination, ...]:
    """[forward.NAME] tables: each checked like a section, plus what its type needs."""
    if not isinstance(table, dict):
        problems.add(("forward",), f"[forward] must hold [forward.NAME] tables, got {_type_name(table)}")
        return ()
    found = []
    for name, raw in table.items():
        where = ("forward", name)
        if not isinstance(raw, dict):
            problems.add(where, f"forward.{name} must be a table [forward.{name}], got {_type_name(raw)}")
            continue
        if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
            problems.add(where, f"[forward.{name}]: a destination name uses letters, digits, - and _ only")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in _FORWARD_KEYS:
                hint = _closest(key, list(_FORWARD_KEYS))
                problems.add((*where, key), f"unknown key {key!r} in [forward.{name}]"
                             + (f" (did you mean {hint!r}?)" if hint else ""))
                continue
            checked, messages = _check_value(f"[forward.{name}] {key}", _FORWARD_KEYS[key], value)
            for message in messages:
                problems.add((*where, key), message)
            if not messages:
                values[key] = checked
        destination = ForwardDestination(**values, name=name)
        for needed in _FORWARD_NEEDS[destination.type]:
            if not getattr(destination, needed):
                problems.add(where, f"[forward.{name}] type {destination.type!r} needs {needed}")
        if destination.format and destination.format not in FORWARD_FORMATS[destination.type]:
            problems.add((*where, "format"), f"[forward.{name}] format {destination.format!r} does not suit type "
                         f"{destination.type!r}; use one of {', '.join(FORWARD_FORMATS[destination.type])}")
        if destination.type == "hec" and not (destination.token or destination.token_file):
            problems.add(where, f"[forward.{name}] type 'hec' needs token or token_file")
        found.append(destination)
    return tuple(found)


def _section_values(section: str, table: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    keys = _SCHEMA[section]
    values: dict[str, Any] = {}
    for name, raw in table.items():
        if name not in keys:
            problems.add((section, name), _unknown_key(section, name))
            continue
        value, messages = _check_value(f"[{section}] {name}", keys[name], raw)
        for message in messages:
            problems.add((section, name), message)
        if not messages:
            values[name] = value
    return values


def _unknown_top_level(name: str, value: object) -> str:
    known = ", ".join(f"[{section}]" for section in _SECTIONS)
    if isinstance(value, dict):
        hint = _closest(name, list(_SECTIONS))
        suggestion = f" (did you mean [{hint}]?)" if hint else ""
        return f"unknown section [{name}]{suggestion}; known sections: {known}"
    # A key above the first header: most likely a section header was forgotten.
    owners = [section for section, keys in _SCHEMA.items() if name in keys]
    suggestion = f" (did you mean to put it under [{owners[0]}]?)" if owners else ""
    return f"unknown top-level key {name!r}{suggestion}; settings go in sections: {known}"


def _unknown_key(section: str, name: str) -> str:
    known = list(_SCHEMA[section])
    hint = _closest(name, known)
    suggestion = f" (did you mean {hint!r}?)" if hint else ""
    return f"unknown key {name!r} in [{section}]{suggestion}; known keys: {', '.join(known)}"


def _closest(word: str, candidates: list[str]) -> str | None:
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


_KIND: dict[Any, str] = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    tuple[str, ...]: "array of strings",
}
_EXPECTED = {hint: ("an " if kind[0] in "aeiou" else "a ") + kind for hint, kind in _KIND.items()}


def _check_value(label: str, key: _Key, raw: object) -> tuple[object, list[str]]:
    """The value as the Config holds it, and the problems found (the value is unusable if there are any)."""
    if key.hint == tuple[str, ...]:
        return _check_strings(label, key.spec, raw)
    value = _convert(key.hint, raw)
    if value is None:
        return raw, [f"{label} must be {_EXPECTED[key.hint]}, got {_type_name(raw)}"]
    if isinstance(value, str):
        return _check_string(label, key.spec, value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value, _check_limits(label, key.spec, value)
    return value, []


def _convert(hint: object, raw: object) -> object | None:
    """`raw` as type `hint`, or None when TOML gave another type. bool is not a number here."""
    if hint is bool:
        return raw if isinstance(raw, bool) else None
    if isinstance(raw, bool):
        return None
    if hint is int:
        return raw if isinstance(raw, int) else None
    if hint is float and isinstance(raw, int | float):
        return _as_float(raw)
    if hint is str:
        return raw if isinstance(raw, str) else None
    return None


def _as_float(number: int | float) -> float:
    try:
        return float(number)
    except OverflowError:  # an integer beyond float range; the limits check reports it
        return math.copysign(math.inf, number)


def _check_string(label: str, spec: KeySpec, value: str) -> tuple[str, list[str]]:
    if spec.choices and value not in spec.choices:
        allowed = ", ".join(repr(choice) for choice in spec.choices)
        hint = _closest(value, list(spec.choices))
        suggestion = f" (did you mean {hint!r}?)" if hint else ""
        return value, [f"{label} must be one of {allowed}, got {value!r}{suggestion}"]
    if spec.path and value:  # an empty path means "the default"
        return _expand_path(label, value)
    return value, []


def _check_strings(label: str, spec: KeySpec, raw: object) -> tuple[object, list[str]]:
    if not isinstance(raw, list):
        return raw, [f"{label} must be {_EXPECTED[tuple[str, ...]]}, got {_type_name(raw)}"]
    items: list[str] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        item_label = f"{label}[{index}]"
        if not isinstance(item, str):
            problems.append(f"{item_label} must be a string, got {_type_name(item)}")
            continue
        value, item_problems = _check_item(item_label, spec, item)
        items.append(value)
        problems.extend(item_problems)
    return tuple(items), problems


def _check_item(label: str, spec: KeySpec, item: str) -> tuple[str, list[str]]:
    if spec.path:
        return _expand_path(label, item)
    if spec.names and (not item or "/" in item or item in {".", ".."}):
        # A path here would never match: the scanner compares directory names only.
        return item, [f"{label} must be a directory name without '/', got {item!r}"]
    return item, []


def _expand_path(label: str, value: str) -> tuple[str, list[str]]:
    expanded = os.path.expanduser(os.path.expandvars(value))
    if not os.path.isabs(expanded):
        # Relative to what? The agent's working directory is arbitrary; guessing would watch the wrong place.
        return value, [f"{label} must be an absolute path after expanding ~ and $VARS, got {expanded!r}"]
    return os.path.normpath(expanded), []


def _check_limits(label: str, spec: KeySpec, value: int | float) -> list[str]:
    if spec.limits is None:
        return []
    low, high = spec.limits
    if low <= value <= high:  # False for NaN too
        return []
    return [f"{label} must be between {low} and {high}, got {value}"]


def _type_name(value: object) -> str:
    """The TOML name of a parsed value's type, for messages."""
    names: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "boolean"),
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        (list, "array"),
        (dict, "table"),
        (datetime, "datetime"),
        (date, "date"),
        (time, "time"),
    ]
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


# ------------------------------------------------------------------------------------------- line scanner


def _line_of(lines: dict[tuple[str, ...], int], where: tuple[str, ...]) -> int | None:
    """The line of the key path, or of its closest enclosing table/key that was seen (inline tables)."""
    for length in range(len(where), 0, -1):
        if where[:length] in lines:
            return lines[where[:length]]
    return None


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path (and every prefix of it) to the line where it first appears."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    pending = _OpenValue()
    # TOML lines end at \n only; str.splitlines would also split at \f, \x1c, U+2028... and miscount.
    for number, line in enumerate(text.split("\n"), start=1):
        if pending.is_open():
            pending.feed(line, 0)
            continue
        stripped = line.strip()
        if stripped.startswith("["):
            header = _parse_header(stripped)
            if header is not None:
                table = header
                _record(lines, table, number)
            continue
        parsed = _parse_key(stripped, 0)
        if parsed is None:
            continue
        parts, end = parsed
        if stripped.startswith("=", end):
            _record(lines, table + parts, number)
            pending.feed(stripped, end + 1)
    return lines


def _record(lines: dict[tuple[str, ...], int], path: tuple[str, ...], number: int) -> None:
    for length in range(1, len(path) + 1):
        lines.setdefault(path[:length], number)


def _parse_header(line: str) -> tuple[str, ...] | None:
    opening, closing = ("[[", "]]") if line.startswith("[[") else ("[", "]")
    parsed = _parse_key(line, len(opening))
    if parsed is None or not line.startswith(closing, parsed[1]):
        return None
    return parsed[0]


_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _parse_key(line: str, start: int) -> tuple[tuple[str, ...], int] | None:
    """A (dotted, possibly quoted) key starting at `start`: its parts and the index after it."""
    parts: list[str] = []
    index = start
    while True:
        index = _skip_blanks(line, index)
        if index < len(line) and line[index] in "\"'":
            end = _string_end(line, index)
            if end is None:
                return None
            parts.append(_unquote(line[index:end]))
        else:
            end = index
            while end < len(line) and line[end] in _BARE_KEY_CHARS:
                end += 1
            if end == index:
                return None
            parts.append(line[index:end])
        index = _skip_blanks(line, end)
        if not line.startswith(".", index):
            return tuple(parts), index
        index += 1


def _skip_blanks(line: str, index: int) -> int:
    while index < len(line) and line[index] in " \t":
        index += 1
    return index


def _string_end(line: str, start: int) -> int | None:
    """Index after the single-line string opening at `start`, or None if it is not closed on this line."""
    quote = line[start]
    index = start + 1
    while index < len(line):
        if line[index] == "\\" and quote == '"':
            index += 2
            continue
        if line[index] == quote:
            return index + 1
        index += 1
    return None


def _unquote(quoted: str) -> str:
    # Let tomllib decode the escapes: exact, and no second implementation of TOML string rules.
    try:
        value = tomllib.loads(f"k = {quoted}")["k"]
    except tomllib.TOMLDecodeError:
        return quoted
    return value if isinstance(value, str) else quoted


class _OpenValue:
    """Tracks a value that continues past its line: a multi-line string, array or inline table.

    Lines inside such a value are not statements, so `[x]` or `k = v` in them must not be taken as keys.
    """

    def __init__(self) -> None:
        self.string_delimiter: str | None = None
        self.depth = 0

    def is_open(self) -> bool:
        return self.string_delimiter is not None or self.depth > 0

    def feed(self, line: str, index: int) -> None:
        while index < len(line):
            if self.string_delimiter is not None:
                index = self._close_string(line, index)
                continue
            index = self._step(line, index)

    def _close_string(self, line: str, index: int) -> int:
        delimiter = self.string_delimiter or ""
        while index < len(line):
            if line[index] == "\\" and delimiter == '"""':
                index += 2
            elif line.startswith(delimiter, index):
                self.string_delimiter = None
                return index + len(delimiter)
            else:
                index += 1
        return index

    def _step(self, line: str, index: int) -> int:
        char = line[index]
        if char == "#":
            return len(line)
        if line.startswith('"""', index) or line.startswith("'''", index):
            self.string_delimiter = line[index : index + 3]
            return index + 3
        if char in "\"'":
            return _string_end(line, index) or len(line)
        if char in "[{":
            self.depth += 1
        elif char in "]}":
            self.depth = max(0, self.depth - 1)
        return index + 1


# ----------------------------------------------------------------------------------------- default text


def _section_text(name: str, section: type, commented: bool) -> str:
    defaults = section()
    lines = [f"[{name}]", f"# {_first_line(section.__doc__)}"]
    prefix = "# " if commented else ""
    for key in _SCHEMA[name].values():
        lines.append("")
        lines.extend(f"# {line}" for line in textwrap.wrap(key.spec.doc, 104))
        default = getattr(defaults, key.name)
        if default is None:  # unset: TOML has no null, so the line stays a comment even in the live text
            lines.append(f"# ({_rules_text(key)}; unset by default)")
            lines.extend("# " + line for line in _assignment(key.name, key.spec.example))
            continue
        lines.append(f"# ({_rules_text(key)})")
        lines.extend(prefix + line for line in _assignment(key.name, default))
    return "\n".join(lines) + "\n"


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]


def _rules_text(key: _Key) -> str:
    kind = _KIND[key.hint]
    if key.spec.path:
        kind = "absolute path" if key.hint is str else "array of absolute paths"
    if key.spec.choices:
        return f"{kind}: one of " + ", ".join(_toml_value(choice) for choice in key.spec.choices)
    if key.spec.limits:
        low, high = key.spec.limits
        return f"{kind} from {low} to {high}"
    return kind


def _assignment(name: str, value: object) -> list[str]:
    line = f"{name} = {_toml_value(value)}"
    if not isinstance(value, tuple) or len(line) <= 100:
        return [line]
    return [f"{name} = [", *(f"    {_toml_value(item)}," for item in value), "]"]


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_escape(char) for char in value) + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04x}"
    return char
