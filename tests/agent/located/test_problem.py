"""One located-problem type: how it reads, and the collector that checks knowing only lines report through."""

from __future__ import annotations

from weightwarden.agent.located.problem import LocatedError, Problem, Problems


def test_a_problem_reads_file_line_subject_message() -> None:
    assert str(Problem("/etc/ww.toml", 4, "bad")) == "/etc/ww.toml:4: bad"
    assert str(Problem("/etc/ww.toml", None, "bad")) == "/etc/ww.toml: bad"
    assert str(Problem("rules/a.yml", 7, "title must be non-empty text", "rule x")) == \
        "rules/a.yml:7: rule x: title must be non-empty text"


def test_the_collector_locates_in_its_file_and_counts_its_own() -> None:
    shared: list[Problem] = [Problem("other.yml", 1, "earlier")]
    rule = Problems("a.yml", "rule x", shared)
    rule.add(3, "first")
    rule.add(0, "no line known")  # yaml_reader.line_of's "unknown"
    assert rule.count == 2
    assert shared[1:] == [Problem("a.yml", 3, "first", "rule x"), Problem("a.yml", None, "no line known", "rule x")]


def test_located_error_lists_every_problem_one_per_line() -> None:
    error = LocatedError([Problem("a", 1, "x"), Problem("a", 2, "y")])
    assert str(error) == "a:1: x\na:2: y" and len(error.problems) == 2
