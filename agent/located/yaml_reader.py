"""YAML read into plain dicts and lists that remember the line each key and item came from.

Rule loading reports every problem with its file and line (STYLE.md, habit 5); PyYAML's node graph has
the marks, so we compose nodes and build the values ourselves instead of using `safe_load`. Its limit:
plain values (text, numbers) carry no line, so their line is asked of the mapping or list holding them
(`line_of(parent, key)`); line_of gives 0 where no line is known.
"""

from __future__ import annotations

from typing import Any

import yaml  # typed when types-PyYAML is installed (pySigma, in the test extra, brings it); [tool.mypy] else

from weightwarden.agent.located.problem import LocatedError, Problem, Problems


class LocatedDict(dict[str, Any]):
    """A mapping with `line` (where it starts) and `lines[key]` (where each key is written), 1-based."""

    line: int = 0
    lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


class LocatedList(list[Any]):
    line: int = 0
    lines: list[int]

    def line_of(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


def line_of(value: Any, key: str | int | None = None) -> int:
    """The line of `value` (or of one key/item of it); 0 when it was not read from YAML."""
    if key is not None and isinstance(value, LocatedDict) and isinstance(key, str):
        return value.line_of(key)
    if key is not None and isinstance(value, LocatedList) and isinstance(key, int):
        return value.line_of(key)
    return int(getattr(value, "line", 0))


class _Unusable(Exception):
    """Raised deep inside _build; load_documents turns it into a located problem of the file."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def read_documents(path: str, problems: list[Problem], what: str) -> list[Any]:
    """Every document of the YAML file at `path`, as located values; [] when it cannot be used.

    Why it cannot be used (unreadable, bad YAML) and an empty file ("no `what` in this file") are added
    to `problems`, located in `path`, so that a loader reports all its files in one pass.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        Problems(path, None, problems).add(None, f"cannot read: {error}")
        return []
    try:
        documents = load_documents(path, text)
    except LocatedError as error:
        problems.extend(error.problems)
        return []
    if not documents:
        Problems(path, None, problems).add(None, f"no {what} in this file")
    return documents


def load_documents(file: str, text: str) -> list[Any]:
    """Every document of a YAML stream, as located values; LocatedError (with the line) on bad syntax."""
    try:
        return _load_documents(text)
    except _Unusable as error:
        raise LocatedError([Problem(file, error.line or None, error.message)]) from None


def _load_documents(text: str) -> list[Any]:
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise _Unusable(mark.line + 1 if mark else 0, f"YAML syntax: {error.problem or error}") from None
    except yaml.YAMLError as error:
        raise _Unusable(0, f"YAML: {error}") from None
    loader = yaml.SafeLoader("")
    try:
        return [_build(node, loader) for node in nodes if node is not None]
    except yaml.YAMLError as error:
        raise _Unusable(0, f"YAML: {error}") from None
    finally:
        loader.dispose()


def _build(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping = LocatedDict()
        mapping.line, mapping.lines = line, {}
        for key_node, value_node in node.value:
            key = _build(key_node, loader)
            if isinstance(key, LocatedDict | LocatedList):
                raise _Unusable(key_node.start_mark.line + 1, "a mapping key must be a plain value")
            text = str(key)
            if text in mapping:
                raise _Unusable(key_node.start_mark.line + 1, f"duplicate key {text!r}")
            mapping[text] = _build(value_node, loader)
            mapping.lines[text] = key_node.start_mark.line + 1
        return mapping
    if isinstance(node, yaml.SequenceNode):
        items = LocatedList(_build(item, loader) for item in node.value)
        items.line, items.lines = line, [item.start_mark.line + 1 for item in node.value]
        return items
    # Scalars: the safe loader's resolver already tagged them (int, float, bool, null, str as YAML 1.1 says).
    return loader.construct_object(node, deep=True)
