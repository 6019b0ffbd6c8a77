"""Conditions over event fields: a small, data-only language compiled once per rule.

A condition is a mapping; every entry must hold. An entry is either a field test or a combinator:

    event.action: model-read              # equal (a list of values: any of them)
    process.name|in: [firefox, chrome]    # field|operator: value
    all: [ {...}, {...} ]   any: [ {...}, {...} ]   not: {...}

Operators: eq (default), in, startswith, endswith, contains, glob, re, gt, gte, lt, lte, exists. Text
comparisons ignore case. When the field holds a list (process.tree.names), the test holds if any item
passes. A missing field never passes (except `exists: false`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from weightwarden.agent.located.problem import Problems
from weightwarden.agent.located.yaml_reader import line_of

OPERATORS = ("eq", "in", "startswith", "endswith", "contains", "glob", "re", "gt", "gte", "lt", "lte", "exists")
COMBINATORS = ("all", "any", "not")
# The roots a field name may start with (detect/fields.py builds them from an Event).
FIELD_ROOTS = ("event", "file", "process", "model", "details", "destination", "tree", "canary", "transfer",
               "staging")

# Fields with a fixed set of names (details.* is open: it holds whatever the sensor recorded).
KNOWN_FIELDS = frozenset({
    "event.action", "event.category", "event.severity", "event.id", "model", "canary",
    "file.path", "file.size", "file.format", "file.sha256", "file.quick_fingerprint", "file.inode", "file.device",
    "file.mtime_ns", "file.path_hex", "file.name", "file.directory",
    "process.pid", "process.name", "process.executable", "process.command_line", "process.user", "process.uid",
    "process.ppid", "process.session_id", "process.exited", "process.bytes_read", "process.mapped",
    "process.tree", "process.tree.names", "process.tree.executables", "process.parent.name",
    "process.opened_by", "process.executable_sha256", "process.program", "process.program_sha256",
    "process.interpreter", "process.script", "process.program.name", "process.script.name", "process.tool",
    "process.tool.identified_by",
    "destination.kind", "destination.address", "destination.port", "destination.path",
    "transfer.tool", "transfer.destination", "transfer.kind", "transfer.host", "transfer.sources",
    "staging.tool", "staging.operation", "staging.output", "staging.inputs",
})

Fields = Mapping[str, Any]
Test = Callable[[Fields], bool]


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition; `fields` lists every field it reads (for rule checks and docs); `source` is the
    mapping it was compiled from (what `rules export --sigma` translates: agent/siem/sigma.py)."""

    test: Test
    fields: tuple[str, ...]
    source: Any = None

    def __call__(self, fields: Fields) -> bool:
        return self.test(fields)


def always(_fields: Fields) -> bool:
    return True


def compile_condition(raw: Any, problems: Problems) -> Condition:
    """Compile `raw`; every problem found is added to `problems` (with its line), never raised."""
    used: list[str] = []
    test = _compile(raw, problems, used)
    return Condition(test, tuple(dict.fromkeys(used)), raw)


def _compile(raw: Any, problems: Problems, used: list[str]) -> Test:
    if not isinstance(raw, Mapping) or not raw:
        problems.add(line_of(raw), "a condition must be a non-empty mapping of field tests")
        return always
    tests: list[Test] = []
    for key, value in raw.items():
        line = line_of(raw, key)
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                problems.add(line, f"{key}: needs a non-empty list of conditions")
                continue
            parts = [_compile(item, problems, used) for item in value]
            tests.append(_all(parts) if key == "all" else _any(parts))
        elif key == "not":
            tests.append(_not(_compile(value, problems, used)))
        else:
            tests.append(_field_test(str(key), value, line, problems, used))
    return _all(tests)


def _all(tests: list[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    return lambda fields: all(test(fields) for test in tests)


def _not(test: Test) -> Test:
    return lambda fields: not test(fields)


def _any(tests: list[Test]) -> Test:
    return lambda fields: any(test(fields) for test in tests)


def _field_test(key: str, value: Any, line: int, problems: Problems, used: list[str]) -> Test:
    name, _, operator = key.partition("|")
    operator = operator or "eq"
    if operator not in OPERATORS:
        problems.add(line, f"unknown operator {operator!r} in {key!r} (one of: {', '.join(OPERATORS)})")
        return always
    if name.split(".", 1)[0] not in FIELD_ROOTS:
        problems.add(line, f"unknown field {name!r}: fields start with one of {', '.join(FIELD_ROOTS)}")
        return always
    if not name.startswith(("details.", "tree.")) and name not in KNOWN_FIELDS:
        problems.add(line, f"unknown field {name!r} (see docs/rules.md for the field list)")
        return always
    used.append(name)
    if operator == "exists":
        if not isinstance(value, bool):
            problems.add(line, f"{key}: takes true or false")
            return always
        return lambda fields: (fields.get(name) is not None) == value
    values = list(value) if isinstance(value, list) else [value]
    if not values:
        problems.add(line, f"{key}: needs at least one value")
        return always
    if any(isinstance(v, Mapping | list) for v in values):
        problems.add(line, f"{key}: values must be plain text, numbers or booleans")
        return always
    match = _matcher(operator, values, key, line, problems)
    if match is None:
        return always

    def test(fields: Fields) -> bool:
        found = fields.get(name)
        if found is None:
            return False
        if isinstance(found, list | tuple | set | frozenset):
            return any(item is not None and match(item) for item in found)
        return match(found)
    return test


def _matcher(operator: str, values: list[Any], key: str, line: int,
             problems: Problems) -> Callable[[Any], bool] | None:
    if operator in ("gt", "gte", "lt", "lte"):
        if len(values) != 1 or isinstance(values[0], bool) or not isinstance(values[0], int | float):
            problems.add(line, f"{key}: takes one number")
            return None
        limit = float(values[0])
        compare: dict[str, Callable[[float], bool]] = {
            "gt": lambda v: v > limit, "gte": lambda v: v >= limit,
            "lt": lambda v: v < limit, "lte": lambda v: v <= limit}
        check = compare[operator]
        return lambda found: isinstance(found, int | float) and not isinstance(found, bool) and check(float(found))
    if operator == "re":
        patterns = []
        for v in values:
            try:
                patterns.append(re.compile(str(v), re.IGNORECASE))
            except re.error as error:
                problems.add(line, f"{key}: bad regular expression {v!r}: {error}")
                return None
        return lambda found: any(p.search(str(found)) for p in patterns)
    if operator in ("eq", "in"):
        plain = {_norm(v) for v in values}
        return lambda found: _norm(found) in plain
    texts = [str(v).lower() for v in values]
    if operator == "startswith":
        prefixes = tuple(texts)
        return lambda found: str(found).lower().startswith(prefixes)
    if operator == "endswith":
        suffixes = tuple(texts)
        return lambda found: str(found).lower().endswith(suffixes)
    if operator == "contains":
        return lambda found: any(t in str(found).lower() for t in texts)
    return lambda found: any(fnmatch.fnmatchcase(str(found).lower(), t) for t in texts)  # glob


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value
