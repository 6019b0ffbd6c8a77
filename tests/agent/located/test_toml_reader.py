"""TOML read with lines: the key-line scanner, its documented limits, and located decode and syntax errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weightwarden.agent.located.problem import LocatedError, Problem
from weightwarden.agent.located.toml_reader import TomlProblems, decode, is_bare_key, key_lines, parse, read_bytes


def test_every_key_path_and_its_prefixes_have_a_line() -> None:
    lines = key_lines('# c\n[scan]\nworkers = 2\n\n[forward."my siem"]\nport = 1\nstore.batch_size = 3\n')
    assert lines[("scan",)] == 2 and lines[("scan", "workers")] == 3
    assert lines[("forward",)] == lines[("forward", "my siem")] == 5 and lines[("forward", "my siem", "port")] == 6
    assert lines[("forward", "my siem", "store", "batch_size")] == 7  # dotted keys extend the table's path


def test_lines_inside_open_values_are_not_statements() -> None:
    text = ('roots = [\n  "/a",  # ] in a comment\n  "[b]",\n]\nnotes = """\n[scan]\nworkers = 0\n"""\n'
            "literal = '''\nx = 1\n'''\nafter = 1\n")
    lines = key_lines(text)
    assert ("scan",) not in lines and ("workers",) not in lines and ("x",) not in lines
    assert (lines[("roots",)], lines[("notes",)], lines[("literal",)], lines[("after",)]) == (1, 5, 9, 12)


def test_documented_limits() -> None:
    lines = key_lines("[a]\nk = 1\nk2 = {inner = 1}\n[a]\nk = 2\n")
    assert lines[("a", "k")] == 2  # a key's line is its first appearance
    toml = parse("f.toml", "[a]\n\nk2 = {inner = 1}\n")
    assert ("a", "k2", "inner") not in toml.lines
    assert toml.line_of(("a", "k2", "inner")) == 3  # inside an inline table: the line of the table's own key
    assert toml.line_of(("nowhere", "at", "all")) is None


def test_problems_are_located_by_key_path_and_sorted_by_line() -> None:
    toml = parse("f.toml", "[scan]\nworkers = 0\n\n[agent]\nmode = 'x'\n")
    problems = TomlProblems("f.toml", toml)
    problems.add(("agent", "mode"), "second")
    problems.add(("scan", "workers"), "first")
    problems.add(("scan", "missing"), "in the table")
    assert [str(p) for p in problems.in_file_order()] == ["f.toml:1: in the table", "f.toml:2: first",
                                                          "f.toml:5: second"]


@pytest.mark.parametrize(("text", "problem"), [
    ("[scan]\nworkers = = 2\n", Problem("f.toml", 2, "invalid TOML: Invalid value (column 11)")),
    ("[inventory]\nroots = [\n", Problem("f.toml", 2, "invalid TOML: Invalid value (at end of file)")),
])
def test_syntax_errors_carry_tomllibs_position(text: str, problem: Problem) -> None:
    with pytest.raises(LocatedError) as raised:
        parse("f.toml", text)
    assert raised.value.problems == [problem]


def test_decode_locates_the_first_byte_that_is_not_utf8_and_drops_a_bom() -> None:
    with pytest.raises(LocatedError) as raised:
        decode("f.toml", b"[agent]\n# caf\xe9\n")
    assert raised.value.problems == [Problem("f.toml", 2, "not valid UTF-8: byte 0xe9 at column 6")]
    assert decode("f.toml", "\ufeff[scan]\n".encode()) == "[scan]\n"


def test_read_bytes_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_bytes(str(fifo))  # must not wait for a writer
    with pytest.raises(IsADirectoryError):
        read_bytes(str(tmp_path))


def test_bare_keys() -> None:
    assert is_bare_key("my-siem_2") and not is_bare_key("my siem") and not is_bare_key("") and not is_bare_key("é")
