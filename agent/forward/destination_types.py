"""Each kind of destination, declared once: the keys it takes and needs, its formats, its `enroll` URLs.

Everything that knows about destination types reads this: the config check (a [forward.NAME] key that
is missing, or that this type does not take), forward/destinations.py (the transport, the default
format and port), `weightwarden enroll` (which URL scheme means which type) and the app's destination
form (which fields a type shows). A new type is a declaration here plus its transport.

Pure data on purpose: the config schema imports it, so it imports nothing of the agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# Keys of the delivery loop (forward/forwarder.py), which every type takes.
COMMON_KEYS = ("type", "enabled", "format", "batch_size", "start", "retry_initial_seconds", "retry_max_seconds",
               "backlog_max_mb")
# Never sent back to the app, and kept when an edit leaves them out (forward/managed.py).
SECRET_KEYS = ("token", "password", "api_key")

# What an empty key means, where the answer is not the same for every destination.
SYSLOG_PORTS = {"tls": 6514, "tcp": 514, "udp": 514}  # `port = 0`, by transport (RFC 5425, RFC 6587/5426)
BULK_INDEX = "weightwarden-events"  # bulk's `index = ""`
HEC_ACK_MODES = ("auto", "on", "off")  # hec's `ack`: forward/hec_transport.py says what each one means


@dataclass(frozen=True)
class DestinationType:
    name: str  # the value of `type`
    label: str  # how messages name it: "a HEC destination needs --token"
    keys: tuple[str, ...]  # the [forward.NAME] keys it takes besides COMMON_KEYS
    needs: tuple[tuple[str, ...], ...]  # at least one key of each group must be set
    formats: tuple[str, ...]  # the message formats it takes; the first is the default
    form: tuple[str, ...]  # the fields the app's destination form shows for it, in order
    # Where the records go: address (with port and transport), url or path. `sync status` shows it, and
    # `enroll --siem URL` puts the URL there (address: host and port; url: without the type's prefix).
    target: Literal["address", "url", "path"] = "url"
    # `enroll --siem URL`: the URL schemes meaning this type, each with the keys it sets, and the key
    # `--token` fills ("": this type takes no token).
    schemes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    enroll_token: str = ""

    @property
    def default_format(self) -> str:
        return self.formats[0]

    def takes(self, key: str) -> bool:
        return key in COMMON_KEYS or key in self.keys


# syslog://, tls:// and syslog+tls:// mean TLS; the plain transports must be asked for by name.
_SYSLOG_SCHEMES = {scheme: {"transport": transport}
                   for transport, schemes in (("tls", ("syslog", "syslog+tls", "tls")), ("tcp", ("syslog+tcp", "tcp")),
                                              ("udp", ("syslog+udp", "udp")))
                   for scheme in schemes}

DESTINATION_TYPES: dict[str, DestinationType] = {kind.name: kind for kind in (
    DestinationType(
        "syslog", "syslog",
        keys=("address", "port", "transport", "ca_file", "client_cert", "client_key", "server_name",
              "timeout_seconds", "resend_window_seconds"),
        needs=(("address",),),
        formats=("cef", "leef"),
        form=("address", "port", "transport", "format", "ca_file", "client_cert", "client_key", "server_name"),
        schemes=_SYSLOG_SCHEMES,
        target="address"),
    DestinationType(
        "hec", "HEC",
        keys=("url", "token", "token_file", "index", "ack", "verify_tls", "ca_file", "client_cert", "client_key",
              "server_name", "timeout_seconds"),
        needs=(("url",), ("token", "token_file")),
        formats=("native", "ecs", "ocsf"),
        form=("url", "token", "token_file", "index", "format", "ack", "verify_tls", "ca_file", "client_cert",
              "client_key", "server_name", "timeout_seconds"),
        # Bare https:// is HEC only with --token; enroll asks which was meant otherwise.
        schemes={"hec+https": {}, "hec+http": {}, "https": {}, "http": {}},
        enroll_token="token"),
    DestinationType(
        "bulk", "_bulk",
        keys=("url", "index", "username", "password", "api_key", "verify_tls", "ca_file", "client_cert",
              "client_key", "server_name", "timeout_seconds"),
        needs=(("url",),),
        formats=("ecs", "native", "ocsf"),
        form=("url", "api_key", "username", "password", "index", "format", "verify_tls", "ca_file", "client_cert",
              "client_key", "server_name", "timeout_seconds"),
        schemes={"bulk+https": {}, "bulk+http": {}, "elastic+https": {}, "opensearch+https": {}},
        enroll_token="api_key"),
    DestinationType(
        "file", "file",
        keys=("path", "max_bytes", "keep"),
        needs=(("path",),),
        formats=("ecs", "ocsf", "native"),
        form=("path", "format", "max_bytes"),
        schemes={"file": {}},
        target="path"),
)}

ALL_FORMATS = tuple(dict.fromkeys(name for kind in DESTINATION_TYPES.values() for name in kind.formats))


def type_of_scheme(scheme: str) -> DestinationType | None:
    """The type an `enroll --siem` URL scheme (lower case) means, or None."""
    return next((kind for kind in DESTINATION_TYPES.values() if scheme in kind.schemes), None)
