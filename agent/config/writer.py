"""The config as TOML text: the default config file generated from the schema, and [forward.NAME] tables
(the app's drop-in, `enroll`, the app's preview) written by one writer, so what is written always parses
back to the same values.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

from weightwarden.agent import config_migrations
from weightwarden.agent.config.schema import FORWARD_KEYS, SCHEMA, SECTIONS, ForwardDestination, SchemaKey
from weightwarden.agent.config.values import KIND
from weightwarden.agent.located.toml_reader import is_bare_key


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
    sections = [_section_text(name, section, commented) for name, section in SECTIONS.items()]
    return "\n".join(header) + "\n".join(sections) + _forward_example_text()


def managed_destinations_text(tables: Mapping[str, Mapping[str, object]]) -> str:
    """The drop-in's text for these [forward.NAME] tables (values: str, bool, int or float)."""
    lines = ["# Written by the Weightwarden agent for destinations configured from the app; edits here are",
             "# replaced by the next change made in the app. The agent's config file is the place for your own."]
    for name, values in tables.items():
        lines.extend(["", *forward_table_lines(name, values)])
    return "\n".join(lines) + "\n"


def forward_table_lines(name: str, values: Mapping[str, object], comment: str = "") -> list[str]:
    """[forward.NAME] and its `key = value` lines (values: str, bool, int or float), with an optional comment."""
    return [f"[forward.{toml_key(name)}]", *([f"# {comment}"] if comment else []),
            *(f"{toml_key(key)} = {toml_value(value)}" for key, value in values.items())]


def toml_key(key: str) -> str:
    return key if is_bare_key(key) else toml_value(key)


def _forward_example_text() -> str:
    """SIEM destinations: always commented (a live one would forward); docs/forwarding.md has examples."""
    lines = ["", "# [forward.NAME]", f"# {_first_line(ForwardDestination.__doc__)}",
             "# Any number of destinations, each its own table; for example [forward.siem]."]
    defaults = ForwardDestination()
    for key in FORWARD_KEYS.values():
        lines.append("#")
        lines.extend(f"# {line}" for line in textwrap.wrap(key.spec.doc, 104))
        lines.append(f"# ({_rules_text(key)})")
        lines.extend("# " + line for line in _assignment(key.name, getattr(defaults, key.name)))
    return "\n".join(lines) + "\n"



def _section_text(name: str, section: type, commented: bool) -> str:
    defaults = section()
    lines = [f"[{name}]", f"# {_first_line(section.__doc__)}"]
    prefix = "# " if commented else ""
    for key in SCHEMA[name].values():
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


def _rules_text(key: SchemaKey) -> str:
    kind = KIND[key.hint]
    if key.spec.path:
        kind = "absolute path" if key.hint is str else "array of absolute paths"
    if key.spec.choices:
        return f"{kind}: one of " + ", ".join(toml_value(choice) for choice in key.spec.choices)
    if key.spec.limits:
        low, high = key.spec.limits
        return f"{kind} from {low} to {high}"
    return kind


def _assignment(name: str, value: object) -> list[str]:
    line = f"{name} = {toml_value(value)}"
    if not isinstance(value, tuple) or len(line) <= 100:
        return [line]
    return [f"{name} = [", *(f"    {toml_value(item)}," for item in value), "]"]


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_escape(char) for char in value) + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04x}"
    return char
