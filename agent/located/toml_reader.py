"""TOML read with the line of every key, so each problem in a config file can say where it is.

tomllib parses the document but gives no positions for values, so `key_lines` finds them with a small
line scanner. Its limits, accepted because they only change where a message points: a key's line is its
first appearance; a key inside an inline table points at the line of the table's own key; a line
holding a header and a key is not split. Syntax errors come from tomllib itself, whose message carries
the position ("(at line 3, column 7)"); `parse` turns that into a located problem.
"""

from __future__ import annotations

import errno
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from weightwarden.agent.located.problem import LocatedError, Problem

KeyPath = tuple[str, ...]  # ("forward", "siem", "port") for [forward.siem] port


@dataclass(frozen=True)
class LocatedToml:
    """A parsed TOML document and the line of each key path (and every prefix of it)."""

    document: dict[str, Any]
    lines: Mapping[KeyPath, int]

    def line_of(self, where: KeyPath) -> int | None:
        """The line of the key path, or of its closest enclosing table/key that was seen (inline tables)."""
        for length in range(len(where), 0, -1):
            if where[:length] in self.lines:
                return self.lines[where[:length]]
        return None


def read_bytes(file: str) -> bytes:
    """The whole file; OSError (with a reason fit for a message) for anything but a readable regular file."""
    # O_NONBLOCK: a FIFO given as the config must not hang the agent waiting for a writer.
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", file)
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", file)
        os.set_blocking(fd, True)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode(file: str, data: bytes) -> str:
    """The text of a TOML file; LocatedError at the line of the first byte that is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - line_start + 1
        raise LocatedError([Problem(file, line, f"not valid UTF-8: byte 0x{data[error.start]:02x} at column {column}")]
                           ) from None
    # Some Windows editors start UTF-8 files with a BOM; TOML does not allow it but it is harmless.
    return text.removeprefix("\ufeff")


def parse(file: str, text: str) -> LocatedToml:
    """The document and its key lines; LocatedError (with the line when tomllib gives one) on bad syntax."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LocatedError([_syntax_problem(file, text, str(error))]) from None
    return LocatedToml(document, key_lines(text))


def _syntax_problem(file: str, text: str, message: str) -> Problem:
    # tomllib puts the position only into the message: "Invalid value (at line 3, column 7)".
    detail, _, position = message.rpartition(" (at ")
    if not detail:
        return Problem(file, None, f"invalid TOML: {message}")
    position = position.rstrip(")")
    if position == "end of document":
        return Problem(file, text.rstrip("\n").count("\n") + 1, f"invalid TOML: {detail} (at end of file)")
    line, _, column = position.removeprefix("line ").partition(", column ")
    if not line.isdigit():
        return Problem(file, None, f"invalid TOML: {message}")
    return Problem(file, int(line), f"invalid TOML: {detail} (column {column})")


def is_bare_key(key: str) -> bool:
    """Whether `key` may be written unquoted (the writer quotes every other key)."""
    return bool(key) and all(ch in _BARE_KEY_CHARS for ch in key)


class TomlProblems:
    """Collects the problems of one TOML file, each located by the key path it is about."""

    def __init__(self, file: str, toml: LocatedToml) -> None:
        self.file = file
        self.toml = toml
        self.found: list[Problem] = []

    def add(self, where: KeyPath, message: str) -> None:
        self.found.append(Problem(self.file, self.toml.line_of(where), message))

    def in_file_order(self) -> list[Problem]:
        return sorted(self.found, key=lambda problem: problem.line or 0)


# ------------------------------------------------------------------------------------------- line scanner


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map each key path (and every prefix of it) to the line where it first appears."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    pending = _OpenValue()
    # TOML lines end at \n only; str.splitlines would also split at \f, \x1c, U+2028... and miscount.
    for number, line in enumerate(text.split("\n"), start=1):
        if pending.is_open():
            pending.feed(line, 0)
            continue
        stripped = line.strip()
        if stripped.startswith("["):
            header = _parse_header(stripped)
            if header is not None:
                table = header
                _record(lines, table, number)
            continue
        parsed = _parse_key(stripped, 0)
        if parsed is None:
            continue
        parts, end = parsed
        if stripped.startswith("=", end):
            _record(lines, table + parts, number)
            pending.feed(stripped, end + 1)
    return lines


def _record(lines: dict[KeyPath, int], path: KeyPath, number: int) -> None:
    for length in range(1, len(path) + 1):
        lines.setdefault(path[:length], number)


def _parse_header(line: str) -> KeyPath | None:
    opening, closing = ("[[", "]]") if line.startswith("[[") else ("[", "]")
    parsed = _parse_key(line, len(opening))
    if parsed is None or not line.startswith(closing, parsed[1]):
        return None
    return parsed[0]


_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _parse_key(line: str, start: int) -> tuple[KeyPath, int] | None:
    """A (dotted, possibly quoted) key starting at `start`: its parts and the index after it."""
    parts: list[str] = []
    index = start
    while True:
        index = _skip_blanks(line, index)
        if index < len(line) and line[index] in "\"'":
            end = _string_end(line, index)
            if end is None:
                return None
            parts.append(_unquote(line[index:end]))
        else:
            end = index
            while end < len(line) and line[end] in _BARE_KEY_CHARS:
                end += 1
            if end == index:
                return None
            parts.append(line[index:end])
        index = _skip_blanks(line, end)
        if not line.startswith(".", index):
            return tuple(parts), index
        index += 1


def _skip_blanks(line: str, index: int) -> int:
    while index < len(line) and line[index] in " \t":
        index += 1
    return index


def _string_end(line: str, start: int) -> int | None:
    """Index after the single-line string opening at `start`, or None if it is not closed on this line."""
    quote = line[start]
    index = start + 1
    while index < len(line):
        if line[index] == "\\" and quote == '"':
            index += 2
            continue
        if line[index] == quote:
            return index + 1
        index += 1
    return None


def _unquote(quoted: str) -> str:
    # Let tomllib decode the escapes: exact, and no second implementation of TOML string rules.
    try:
        value = tomllib.loads(f"k = {quoted}")["k"]
    except tomllib.TOMLDecodeError:
        return quoted
    return value if isinstance(value, str) else quoted


class _OpenValue:
    """Tracks a value that continues past its line: a multi-line string, array or inline table.

    Lines inside such a value are not statements, so `[x]` or `k = v` in them must not be taken as keys.
    """

    def __init__(self) -> None:
        self.string_delimiter: str | None = None
        self.depth = 0

    def is_open(self) -> bool:
        return self.string_delimiter is not None or self.depth > 0

    def feed(self, line: str, index: int) -> None:
        while index < len(line):
            if self.string_delimiter is not None:
                index = self._close_string(line, index)
                continue
            index = self._step(line, index)

    def _close_string(self, line: str, index: int) -> int:
        delimiter = self.string_delimiter or ""
        while index < len(line):
            if line[index] == "\\" and delimiter == '"""':
                index += 2
            elif line.startswith(delimiter, index):
                self.string_delimiter = None
                return index + len(delimiter)
            else:
                index += 1
        return index

    def _step(self, line: str, index: int) -> int:
        char = line[index]
        if char == "#":
            return len(line)
        if line.startswith('"""', index) or line.startswith("'''", index):
            self.string_delimiter = line[index : index + 3]
            return index + 3
        if char in "\"'":
            return _string_end(line, index) or len(line)
        if char in "[{":
            self.depth += 1
        elif char in "]}":
            self.depth = max(0, self.depth - 1)
        return index + 1

