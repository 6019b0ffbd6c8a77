"""A checker of ECS documents against ECS's own field definitions (generated/ecs/ecs_flat.yml, pinned in
tests/data/ecs): every field outside our `weightwarden.*` namespace is an ECS field, of its ECS type; fields
ECS normalizes to arrays are arrays; values with allowed values (event.kind, event.category, event.type,
event.outcome) use them, and event.category/event.type go together as ECS's `expected_event_types` say:
every type is expected by one of the categories, every category has one of its expected types.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PINNED = Path(__file__).resolve().parents[2] / "data" / "ecs" / "ecs_flat.yml"
CUSTOM = "weightwarden."  # our own namespace (ECS: custom fields go under a name of their own)

_TEXT = {"keyword", "constant_keyword", "wildcard", "match_only_text", "text"}
_INTEGERS = {"long", "integer", "short", "byte", "unsigned_long"}
_NUMBERS = _INTEGERS | {"float", "half_float", "scaled_float", "double"}


@cache
def fields() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = yaml.safe_load(PINNED.read_text())
    return loaded


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not name.startswith(CUSTOM):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def check_document(doc: dict[str, Any]) -> list[str]:
    """Every way `doc` departs from ECS, as `field: problem` lines (empty: it conforms)."""
    definitions = fields()
    problems: list[str] = []
    flat = flatten(doc)
    for name, value in flat.items():
        if name.startswith(CUSTOM) or name == "weightwarden":
            continue
        definition = definitions.get(name)
        if definition is None:
            problems.append(f"{name}: not an ECS field")
            continue
        if "array" in definition.get("normalize", []) and not isinstance(value, list):
            problems.append(f"{name}: ECS normalizes it to an array, got {type(value).__name__}")
        for item in value if isinstance(value, list) else [value]:
            problem = _type_problem(item, definition["type"])
            if problem:
                problems.append(f"{name}: {problem}")
            allowed = definition.get("allowed_values")
            if allowed and item not in {v["name"] for v in allowed}:
                problems.append(f"{name}: {item!r} is not an allowed value")
    problems += _categorization(flat, definitions)
    for required in ("@timestamp", "ecs.version", "event.kind"):
        if required not in flat:
            problems.append(f"{required}: missing")
    return problems


def _categorization(flat: dict[str, Any], definitions: dict[str, dict[str, Any]]) -> list[str]:
    categories = flat.get("event.category") or []
    types = flat.get("event.type") or []
    if not categories or not types:
        return ["event.category and event.type: both needed"]
    expected = {v["name"]: set(v.get("expected_event_types") or ())
                for v in definitions["event.category"]["allowed_values"]}
    problems = []
    for kind in types:
        if not any(kind in expected.get(c, set()) for c in categories):
            problems.append(f"event.type: {kind!r} is expected by none of the categories {categories}")
    for category in categories:
        if not expected.get(category, set()) & set(types):
            problems.append(f"event.category: {category!r} has none of its expected types in {types}")
    return problems


def _type_problem(item: Any, kind: str) -> str | None:
    if kind in _TEXT and not isinstance(item, str):
        return f"{kind} wants a string, got {type(item).__name__}"
    if kind in _INTEGERS and (not isinstance(item, int) or isinstance(item, bool)):
        return f"{kind} wants an integer, got {type(item).__name__}"
    if kind in _NUMBERS and (not isinstance(item, (int, float)) or isinstance(item, bool)):
        return f"{kind} wants a number, got {type(item).__name__}"
    if kind == "boolean" and not isinstance(item, bool):
        return f"boolean wants true or false, got {item!r}"
    if kind == "ip":
        try:
            ipaddress.ip_address(str(item))
        except ValueError:
            return f"{item!r} is not an IP address"
    if kind == "date":
        try:
            datetime.fromisoformat(str(item).replace("Z", "+00:00"))
        except ValueError:
            return f"{item!r} is not an ISO 8601 date"
    if kind in ("object", "nested", "flattened") and not isinstance(item, dict):
        return f"{kind} wants an object"
    return None


def json_kind(value: Any) -> str:
    """What an index mapping makes of a JSON value: object, string, number, boolean (a list: its items')."""
    if isinstance(value, list):
        kinds = {json_kind(v) for v in value if v is not None}
        return kinds.pop() if len(kinds) == 1 else "empty" if not kinds else "mixed"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null"


def leaf_kinds(value: Any, prefix: str, out: dict[str, set[str]], where: str) -> None:
    """Every dotted key under `prefix` with the kinds of value it holds (`where` says which record)."""
    if isinstance(value, dict):
        out.setdefault(prefix, set()).add(f"object@{where}")
        for key, item in value.items():
            leaf_kinds(item, f"{prefix}.{key}", out, where)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        out.setdefault(prefix, set()).add(f"object@{where}")
        for item in value:
            if isinstance(item, dict):
                for key, inner in item.items():
                    leaf_kinds(inner, f"{prefix}.{key}", out, where)
    else:
        kind = json_kind(value)
        if kind not in ("null", "empty"):
            out.setdefault(prefix, set()).add(f"{kind}@{where}")
