"""One value of a config file checked against its key: its TOML type, choices, limits and paths.

Each check gives the value as the Config holds it plus the messages found, so the loader reports every
problem of a file in one pass instead of stopping at the first.
"""

from __future__ import annotations

import difflib
import math
import os
from datetime import date, datetime, time
from typing import Any

from weightwarden.agent.config.schema import KeySpec, SchemaKey


def closest(word: str, candidates: list[str]) -> str | None:
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


KIND: dict[Any, str] = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    tuple[str, ...]: "array of strings",
}
_EXPECTED = {hint: ("an " if kind[0] in "aeiou" else "a ") + kind for hint, kind in KIND.items()}


def check_value(label: str, key: SchemaKey, raw: object) -> tuple[object, list[str]]:
    """The value as the Config holds it, and the problems found (the value is unusable if there are any)."""
    if key.hint == tuple[str, ...]:
        return _check_strings(label, key.spec, raw)
    value = _convert(key.hint, raw)
    if value is None:
        return raw, [f"{label} must be {_EXPECTED[key.hint]}, got {type_name(raw)}"]
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
        hint = closest(value, list(spec.choices))
        suggestion = f" (did you mean {hint!r}?)" if hint else ""
        return value, [f"{label} must be one of {allowed}, got {value!r}{suggestion}"]
    if spec.path and value:  # an empty path means "the default"
        return _expand_path(label, value)
    return value, []


def _check_strings(label: str, spec: KeySpec, raw: object) -> tuple[object, list[str]]:
    if not isinstance(raw, list):
        return raw, [f"{label} must be {_EXPECTED[tuple[str, ...]]}, got {type_name(raw)}"]
    items: list[str] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        item_label = f"{label}[{index}]"
        if not isinstance(item, str):
            problems.append(f"{item_label} must be a string, got {type_name(item)}")
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


def type_name(value: object) -> str:
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

