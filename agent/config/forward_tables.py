"""[forward.NAME] tables: each key checked against the schema, then the table against what its destination
type declares (forward/destination_types.py): the keys it needs and the formats it takes."""

from __future__ import annotations

from typing import Any

from weightwarden.agent.config.schema import FORWARD_KEYS, ForwardDestination
from weightwarden.agent.config.values import check_value, closest, type_name
from weightwarden.agent.forward.destination_types import DESTINATION_TYPES
from weightwarden.agent.located.toml_reader import TomlProblems


def forward_destinations(table: object, problems: TomlProblems) -> tuple[ForwardDestination, ...]:
    """The destinations of a [forward] table, in file order; every problem is added to `problems`."""
    if not isinstance(table, dict):
        problems.add(("forward",), f"[forward] must hold [forward.NAME] tables, got {type_name(table)}")
        return ()
    found = []
    for name, raw in table.items():
        where = ("forward", name)
        if not isinstance(raw, dict):
            problems.add(where, f"forward.{name} must be a table [forward.{name}], got {type_name(raw)}")
            continue
        if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
            problems.add(where, f"[forward.{name}]: a destination name uses letters, digits, - and _ only")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in FORWARD_KEYS:
                hint = closest(key, list(FORWARD_KEYS))
                problems.add((*where, key), f"unknown key {key!r} in [forward.{name}]"
                             + (f" (did you mean {hint!r}?)" if hint else ""))
                continue
            checked, messages = check_value(f"[forward.{name}] {key}", FORWARD_KEYS[key], value)
            for message in messages:
                problems.add((*where, key), message)
            if not messages:
                values[key] = checked
        lines = ((key, problems.toml.line_of((*where, key))) for key in values)
        located = tuple((key, f"{problems.file}:{line}") for key, line in lines if line)
        destination = ForwardDestination(**values, name=name, located=located)
        _check_type(destination, where, problems)
        found.append(destination)
    return tuple(found)


def _check_type(destination: ForwardDestination, where: tuple[str, ...], problems: TomlProblems) -> None:
    """What the destination's type needs and takes; an unusable `type` was reported already (the default
    type's needs are still checked, as they always were)."""
    name, kind = destination.name, DESTINATION_TYPES[destination.type]
    for group in kind.needs:
        if not any(getattr(destination, key) for key in group):
            problems.add(where, f"[forward.{name}] type {kind.name!r} needs {' or '.join(group)}")
    if destination.format and destination.format not in kind.formats:
        problems.add((*where, "format"), f"[forward.{name}] format {destination.format!r} does not suit type "
                     f"{kind.name!r}; use one of {', '.join(kind.formats)}")
