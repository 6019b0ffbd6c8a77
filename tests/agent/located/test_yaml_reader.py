"""YAML read with lines: every key and item remembers where it was written; bad YAML is one located problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightwarden.agent.located.problem import LocatedError, Problem
from weightwarden.agent.located.yaml_reader import line_of, load_documents, read_documents


def test_keys_and_items_keep_their_lines() -> None:
    first, second = load_documents("r.yml", "# one\nid: a\nlist:\n  - x\n  - {k: 1}\n---\nid: b\n")
    assert (line_of(first), line_of(first, "id"), line_of(first, "list")) == (2, 2, 3)
    assert [line_of(first["list"], index) for index in (0, 1)] == [4, 5]
    assert line_of(first["list"][1], "k") == 5 and line_of(second, "id") == 7
    assert line_of("plain text") == 0 and line_of(first, "missing") == 2  # unknown key: the mapping's line


@pytest.mark.parametrize(("text", "line", "message"), [
    ("id: x\n  title: [unclosed\n", 2, "YAML syntax: mapping values are not allowed here"),
    ("id: a\nid: b\n", 2, "duplicate key 'id'"),
    ("? [a]\n: 1\n", 1, "a mapping key must be a plain value"),
])
def test_bad_yaml_is_one_located_problem(text: str, line: int, message: str) -> None:
    with pytest.raises(LocatedError) as raised:
        load_documents("r.yml", text)
    assert raised.value.problems == [Problem("r.yml", line, message)]


def test_read_documents_reports_an_unusable_file_and_goes_on(tmp_path: Path) -> None:
    good, empty, bad = tmp_path / "good.yml", tmp_path / "empty.yml", tmp_path / "bad.yml"
    good.write_text("id: a\n---\nid: b\n")
    empty.write_text("# nothing\n")
    bad.write_text("id: a\nid: b\n")
    found: list[Problem] = []
    assert [document["id"] for document in read_documents(str(good), found, "rules")] == ["a", "b"]
    assert read_documents(str(empty), found, "rules") == []
    assert read_documents(str(bad), found, "rules") == []
    assert read_documents(str(tmp_path / "missing.yml"), found, "rules") == []
    assert found[:2] == [Problem(str(empty), None, "no rules in this file"), Problem(str(bad), 2, "duplicate key 'id'")]
    assert len(found) == 3 and found[2].line is None and found[2].message.startswith("cannot read: ")
