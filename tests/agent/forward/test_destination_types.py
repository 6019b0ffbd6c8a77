"""Each destination type is declared once (forward/destination_types.py), and that declaration is what the
config check, the transports and `enroll` use: these tests change with the declaration, not beside it."""

from __future__ import annotations

import re
from dataclasses import fields, replace
from pathlib import Path

import pytest

from weightwarden.agent.cli.enroll_cmd import destination_table
from weightwarden.agent.config import FORWARD_KEYS, ForwardDestination, check_managed_destinations, forward_table_lines
from weightwarden.agent.forward.bulk_transport import BulkTransport
from weightwarden.agent.forward.destination_types import (
    ALL_FORMATS,
    BULK_INDEX,
    COMMON_KEYS,
    DESTINATION_TYPES,
    SECRET_KEYS,
    SYSLOG_PORTS,
    DestinationType,
    type_of_scheme,
)
from weightwarden.agent.forward.destinations import TRANSPORTS, build_transport, format_of
from weightwarden.agent.forward.status import target
from weightwarden.agent.forward.syslog_transport import SyslogTransport
from weightwarden.agent.forward.transport import Transport

TYPES = list(DESTINATION_TYPES.values())
# A usable value for each key a type may need (the check only looks at their form).
EXAMPLES = {"address": "siem.example.org", "url": "https://siem.example.org:8088", "token": "t",
            "token_file": "/etc/weightwarden/hec.token", "path": "/var/log/weightwarden/events.jsonl"}


def needed(kind: DestinationType) -> dict[str, object]:
    """The type plus the first key of each group it needs."""
    return {"type": kind.name, **{group[0]: EXAMPLES[group[0]] for group in kind.needs}}


def messages(name: str, values: dict[str, object]) -> list[str]:
    text = "\n".join(forward_table_lines(name, values)) + "\n"
    return [p.message for p in check_managed_destinations("drop-in.toml", text)[1]]


def test_the_declarations_and_the_schema_name_the_same_keys() -> None:
    taken = set(COMMON_KEYS).union(*(kind.keys for kind in TYPES))
    assert taken == set(FORWARD_KEYS), "a key no type takes, or a type taking a key the schema lacks"
    assert set(SECRET_KEYS) <= set(FORWARD_KEYS)
    for kind in TYPES:
        mentioned = {*kind.form, *(key for group in kind.needs for key in group),
                     *(key for values in kind.schemes.values() for key in values)}
        assert all(kind.takes(key) for key in mentioned), kind.name
        assert not kind.enroll_token or kind.takes(kind.enroll_token)
        assert kind.formats and set(kind.formats) <= set(ALL_FORMATS)
    assert FORWARD_KEYS["type"].spec.choices == tuple(DESTINATION_TYPES)
    assert FORWARD_KEYS["transport"].spec.choices == tuple(SYSLOG_PORTS)
    assert FORWARD_KEYS["format"].spec.choices == ("", *ALL_FORMATS)


def test_key_descriptions_name_only_types_that_take_the_key() -> None:
    # "hec: the HEC token." must not drift from what hec takes (the default config prints these lines).
    for key, schema_key in FORWARD_KEYS.items():
        named = re.findall(r"(?:^|; )(\w+)(?: [\w/]+)?:", schema_key.spec.doc)
        for name in (n for n in named if n in DESTINATION_TYPES):
            assert DESTINATION_TYPES[name].takes(key), (key, name)


@pytest.mark.parametrize("kind", TYPES, ids=lambda kind: kind.name)
def test_what_a_type_needs_is_what_config_check_asks_for(kind: DestinationType) -> None:
    assert messages("x", needed(kind)) == []
    for group in kind.needs:
        without = {k: v for k, v in needed(kind).items() if k not in group}
        assert f"[forward.x] type {kind.name!r} needs {' or '.join(group)}" in messages("x", without)
    for group in kind.needs:
        for alternative in group[1:]:  # any key of a group will do
            values = {k: v for k, v in needed(kind).items() if k != group[0]}
            assert messages("x", {**values, alternative: EXAMPLES[alternative]}) == []


@pytest.mark.parametrize("kind", TYPES, ids=lambda kind: kind.name)
def test_a_type_takes_exactly_its_formats(kind: DestinationType) -> None:
    for name in kind.formats:
        assert messages("x", {**needed(kind), "format": name}) == []
    for name in set(ALL_FORMATS) - set(kind.formats):
        assert messages("x", {**needed(kind), "format": name}) == [
            f"[forward.x] format {name!r} does not suit type {kind.name!r}; use one of {', '.join(kind.formats)}"]
    assert format_of(ForwardDestination(type=kind.name)) == kind.formats[0] == kind.default_format


def test_every_declared_type_has_a_transport_and_builds_it(tmp_path: Path) -> None:
    assert list(TRANSPORTS) == list(DESTINATION_TYPES)
    for kind in TYPES:
        values = {**needed(kind), "path": str(tmp_path / "out.jsonl")} if kind.name == "file" else needed(kind)
        transport: Transport = build_transport(ForwardDestination(name="x", **values), "host")
        transport.close()


def test_an_empty_port_or_index_means_the_declared_default() -> None:
    for name, port in SYSLOG_PORTS.items():
        destination = ForwardDestination(type="syslog", address="127.0.0.1", transport=name)
        transport = build_transport(destination, "host")
        assert isinstance(transport, SyslogTransport) and transport.port == port
        explicit = build_transport(replace(destination, port=1514), "host")
        assert isinstance(explicit, SyslogTransport) and explicit.port == 1514
    bulk = build_transport(ForwardDestination(type="bulk", url="https://es:9200"), "host")
    assert isinstance(bulk, BulkTransport) and bulk.index == BULK_INDEX
    named = build_transport(ForwardDestination(type="bulk", url="https://es:9200", index="mine"), "host")
    assert isinstance(named, BulkTransport) and named.index == "mine"


def test_sync_status_shows_where_each_type_sends() -> None:
    shown = {kind.name: target(ForwardDestination(**needed(kind))) for kind in TYPES}  # type: ignore[arg-type]
    assert shown == {"syslog": "tls://siem.example.org", "hec": EXAMPLES["url"], "bulk": EXAMPLES["url"],
                     "file": EXAMPLES["path"]}
    assert target(ForwardDestination(address="s", port=1514, transport="udp")) == "udp://s:1514"


def test_every_enroll_scheme_makes_a_destination_of_its_type() -> None:
    for kind in TYPES:
        for scheme, keys in kind.schemes.items():
            assert type_of_scheme(scheme) is kind
            rest = "/var/log/ww.jsonl" if kind.target == "path" else "siem.example.org:1234"
            table = destination_table(f"{scheme}://{rest}", "t" if kind.enroll_token else None, None, None)
            assert table["type"] == kind.name and keys.items() <= table.items()
            assert kind.target in table and messages("x", table) == []
    assert type_of_scheme("ftp") is None


def test_dataclass_fields_beyond_the_keys_are_not_keys() -> None:
    assert {f.name for f in fields(ForwardDestination)} - set(FORWARD_KEYS) == {"name", "managed", "located"}
