"""A checker of OCSF events against the schema's own source files (pinned in tests/data/ocsf, OCSF 1.3.0).

The schema repository defines classes and objects in parts: a class `extends` its category's class and
base_event, `$include`s profiles and shared attribute sets, and names its attributes, whose types, enums
and descriptions live in dictionary.json unless the class or object overrides them. This module compiles a
class or object the way the OCSF server does (parent first, includes, then the definition's own keys) and
checks one event: every attribute known (no invented names), every required one present, each object's
`at_least_one`/`just_one` constraints, enum values, types (with the regex and range of the scalar types),
`*_id` = 99 with its sibling name, the uids that follow from each other, and a profile's attributes only
when the event lists that profile in metadata.profiles.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PINNED = Path(__file__).resolve().parents[2] / "data" / "ocsf"


@dataclass
class Schema:
    root: Path = PINNED
    opened: set[str] = field(default_factory=set)  # the files read, relative to root (what a pin needs)
    _events: dict[str, Path] | None = None
    _dictionary: dict[str, Any] | None = None

    def read(self, relative: str) -> dict[str, Any]:
        path = self.root / relative
        if not path.is_file():
            raise AssertionError(f"OCSF definition {relative} is not pinned in {self.root}")
        self.opened.add(relative)
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    @property
    def dictionary(self) -> dict[str, Any]:
        if self._dictionary is None:
            self._dictionary = self.read("dictionary.json")
        return self._dictionary

    def version(self) -> str:
        return str(self.read("version.json")["version"])

    def category_uid(self, name: str) -> int:
        return int(self.read("categories.json")["attributes"][name]["uid"])

    # ------------------------------------------------------------------ compiling

    def event_file(self, name: str) -> str:
        if self._events is None:
            self._events = {}
            for path in sorted((self.root / "events").rglob("*.json")):
                self._events[json.loads(path.read_text())["name"]] = path
        if name not in self._events:
            raise AssertionError(f"no pinned OCSF event class named {name}")
        return str(self._events[name].relative_to(self.root))

    def event_class(self, class_uid: int) -> Compiled:
        """The class with this uid (category uid * 1000 + the class's own uid), compiled."""
        self.event_file("base_event")  # loads the index
        assert self._events is not None
        raw = {name: json.loads(path.read_text()) for name, path in self._events.items()}
        for name, definition in raw.items():
            category, parent = definition.get("category"), definition.get("extends")
            while category is None and parent in raw:
                category, parent = raw[parent].get("category"), raw[parent].get("extends")
            if "uid" in definition and category and category != "other" and \
                    self.category_uid(category) * 1000 + int(definition["uid"]) == class_uid:
                return self.compile_event(name)
        raise AssertionError(f"no pinned OCSF event class has class_uid {class_uid}")

    def compile_event(self, name: str) -> Compiled:
        definition = self.read(self.event_file(name))
        parent = self.compile_event(definition["extends"]) if definition.get("extends") else None
        compiled = Compiled(name, self)
        if parent is not None:
            compiled.inherit(parent)
        compiled.category = definition.get("category", compiled.category)
        if "uid" in definition:
            compiled.own_uid = int(definition["uid"])
        compiled.merge(definition)
        return compiled

    def compile_object(self, name: str) -> Compiled:
        matches = [p for p in sorted((self.root / "objects").glob("*.json"))
                   if json.loads(p.read_text())["name"] == name]
        if not matches:
            raise AssertionError(f"OCSF object {name} is not pinned in {self.root / 'objects'}")
        definition = self.read(str(matches[0].relative_to(self.root)))
        compiled = Compiled(name, self)
        if definition.get("extends") and definition["extends"] != "object":
            compiled.inherit(self.compile_object(definition["extends"]))
        compiled.merge(definition)
        return compiled


@dataclass
class Compiled:
    name: str
    schema: Schema
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    constraints: dict[str, list[str]] = field(default_factory=dict)
    category: str | None = None
    own_uid: int | None = None

    @property
    def uid(self) -> int | None:
        if self.own_uid is None or self.category is None:
            return None
        return self.schema.category_uid(self.category) * 1000 + self.own_uid

    def inherit(self, parent: Compiled) -> None:
        self.attributes = {k: dict(v) for k, v in parent.attributes.items()}
        self.constraints = dict(parent.constraints)
        self.category = parent.category

    def merge(self, definition: dict[str, Any]) -> None:
        attributes = dict(definition.get("attributes", {}))
        for include in attributes.pop("$include", []):
            included = self.schema.read(include)
            profile = included["name"] if included.get("meta") == "profile" else None
            for key, value in included["attributes"].items():
                if key == "$include":
                    continue
                merged = _merge(self.attributes.get(key, {}), value)
                if profile is not None and key not in self.attributes:
                    merged["profile"] = profile
                self.attributes[key] = merged
        for key, value in attributes.items():
            merged = _merge(self.attributes.get(key, {}), value)
            merged.pop("profile", None)  # the definition names it itself: part of it whatever the profiles
            self.attributes[key] = merged
        if "constraints" in definition:
            self.constraints = definition["constraints"]

    def attribute(self, key: str) -> dict[str, Any]:
        """The attribute as this class or object uses it: the dictionary's entry under its overrides."""
        return _merge(self.schema.dictionary["attributes"].get(key, {}), self.attributes[key])


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------- checking


def check_event(event: dict[str, Any], schema: Schema | None = None) -> list[str]:
    """Every way `event` departs from the pinned schema, as `path: problem` lines (empty: it conforms)."""
    schema = schema or Schema()
    problems: list[str] = []
    class_uid = event.get("class_uid")
    if not isinstance(class_uid, int):
        return ["class_uid: missing or not an integer"]
    compiled = schema.event_class(class_uid)
    for key in _DERIVED:
        if not isinstance(event.get(key), int) or isinstance(event.get(key), bool):
            problems.append(f"{key}: missing or not an integer")
    metadata = event.get("metadata") or {}
    if metadata.get("version") != schema.version():
        problems.append(f"metadata.version: {metadata.get('version')!r}, the pinned schema is {schema.version()}")
    profiles = set(metadata.get("profiles") or ())
    assert compiled.category is not None
    if event.get("category_uid") != schema.category_uid(compiled.category):
        problems.append(f"category_uid: {event.get('category_uid')} for a class of {compiled.category}")
    activity = event.get("activity_id")
    if isinstance(activity, int) and event.get("type_uid") != class_uid * 100 + activity:
        problems.append(f"type_uid: {event.get('type_uid')} != class_uid * 100 + activity_id")
    _check_object(event, compiled, profiles, compiled.name, problems, schema)
    return problems


_DERIVED = ("class_uid", "category_uid", "type_uid")


def _check_object(value: dict[str, Any], compiled: Compiled, profiles: set[str], where: str,
                  problems: list[str], schema: Schema) -> None:
    for key in value:
        if key not in compiled.attributes:
            problems.append(f"{where}.{key}: not an attribute of {compiled.name}")
        elif compiled.attributes[key].get("profile") not in (None, *profiles):
            problems.append(f"{where}.{key}: belongs to profile {compiled.attributes[key]['profile']}, "
                            f"which metadata.profiles does not list")
    for key, attribute in compiled.attributes.items():
        applies = attribute.get("profile") in (None, *profiles)
        if applies and attribute.get("requirement") == "required" and key not in value:
            problems.append(f"{where}.{key}: required by {compiled.name}, missing")
    for rule, keys in compiled.constraints.items():
        present = [k for k in keys if k in value]
        if rule == "at_least_one" and not present:
            problems.append(f"{where}: {compiled.name} needs at least one of {keys}")
        if rule == "just_one" and len(present) != 1:
            problems.append(f"{where}: {compiled.name} needs exactly one of {keys}, has {present}")
    for key, item in value.items():
        if key in _DERIVED and compiled.uid is not None:
            continue  # the class sets them (their dictionary enum is base_event's 0): check_event checks them
        if key in compiled.attributes:
            _check_attribute(item, compiled.attribute(key), value, profiles, f"{where}.{key}", problems, schema)


def _check_attribute(item: Any, attribute: dict[str, Any], parent: dict[str, Any], profiles: set[str],
                     where: str, problems: list[str], schema: Schema) -> None:
    if "@deprecated" in attribute:
        problems.append(f"{where}: deprecated since {attribute['@deprecated'].get('since')}")
    if attribute.get("is_array"):
        if not isinstance(item, list):
            problems.append(f"{where}: an array in OCSF, got {type(item).__name__}")
            return
        for index, element in enumerate(item):
            _check_value(element, attribute, parent, profiles, f"{where}[{index}]", problems, schema)
    else:
        _check_value(item, attribute, parent, profiles, where, problems, schema)


def _check_value(item: Any, attribute: dict[str, Any], parent: dict[str, Any], profiles: set[str],
                 where: str, problems: list[str], schema: Schema) -> None:
    kind = str(attribute.get("type"))
    if not kind.endswith("_t"):  # the dictionary names an object by its name as the type
        object_type = kind
        if not isinstance(item, dict):
            problems.append(f"{where}: an object ({object_type}), got {type(item).__name__}")
        elif object_type != "object":  # `object`: free-form (unmapped)
            _check_object(item, schema.compile_object(object_type), profiles, where, problems, schema)
        return
    problem = _scalar_problem(item, str(kind), schema)
    if problem:
        problems.append(f"{where}: {problem}")
        return
    enum = attribute.get("enum")
    if enum is not None:
        if str(item) not in enum:
            problems.append(f"{where}: {item!r} is not one of {sorted(enum, key=_numeric)}")
        elif str(item) == "99" and attribute.get("sibling") and not parent.get(attribute["sibling"]):
            problems.append(f"{where}: 99 (Other) without its {attribute['sibling']}")


def _numeric(text: str) -> tuple[int, str]:
    return (int(text), "") if text.lstrip("-").isdigit() else (0, text)


def _scalar_problem(item: Any, kind: str, schema: Schema) -> str | None:
    types = schema.dictionary["types"]["attributes"]
    if kind not in types:
        return f"unknown type {kind}"
    definition = types[kind]
    base = definition.get("type", kind)
    if base == "string_t" and not isinstance(item, str):
        return f"{kind} wants a string, got {type(item).__name__}"
    if base in ("integer_t", "long_t") and (not isinstance(item, int) or isinstance(item, bool)):
        return f"{kind} wants an integer, got {type(item).__name__}"
    if base == "float_t" and (not isinstance(item, (int, float)) or isinstance(item, bool)):
        return f"{kind} wants a number, got {type(item).__name__}"
    if base == "boolean_t" and not isinstance(item, bool):
        return f"{kind} wants a boolean, got {type(item).__name__}"
    if "regex" in definition and isinstance(item, str) and not re.search(definition["regex"], item):
        return f"{item!r} does not match the {kind} pattern"
    if "max_len" in definition and isinstance(item, str) and len(item) > int(definition["max_len"]):
        return f"longer than {definition['max_len']} characters ({kind})"
    if "range" in definition and isinstance(item, int):
        low, high = definition["range"]
        if not low <= item <= high:
            return f"{item} outside {kind} range {low}..{high}"
    return None
