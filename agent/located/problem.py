"""One problem found in a file, with where it is: the one type config, rule and condition checks report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file, located as precisely as we can.

    `line` is 1-based; None when no line applies (the file cannot be read at all). `subject` names what in
    the file the problem is about when a line alone does not say it, such as "rule model-copy" in a rule
    file holding several rules.
    """

    file: str
    line: int | None
    message: str
    subject: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        about = f"{self.subject}: " if self.subject else ""
        return f"{where}: {about}{self.message}"


class Problems:
    """Collects the problems of one file (about one subject, when given), each added with its line.

    Checks that know only lines (a condition inside a rule) report through this, so they need not know
    which file they are in. A line of 0 means "unknown", as yaml_reader.line_of returns it.
    """

    def __init__(self, file: str, subject: str | None = None, found: list[Problem] | None = None) -> None:
        self.file = file
        self.subject = subject
        self.found: list[Problem] = [] if found is None else found  # shared when given
        self.count = 0  # added through this collector (the shared list may hold others' too)

    def add(self, line: int | None, message: str) -> None:
        self.count += 1
        self.found.append(Problem(self.file, line or None, message, self.subject))


class LocatedError(Exception):
    """A file could not be used; `problems` lists every reason found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))
