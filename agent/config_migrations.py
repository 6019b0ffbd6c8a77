"""Config file format versions: named, ordered migrations that bring an older config.toml forward.

The top-level key `format = N` says which format a file is written in; a file without it is format 0
(every config written before formats were numbered). Migration i (0-based) turns format i into format
i + 1; like the database's migrations they are never edited or reordered once released (STYLE.md #6).

Migrations edit the text, not a parsed copy, so the admin's comments, order and spelling survive. After
they run, every value of the old file must still be there (where a migration says it moved it), the
original is kept as a backup beside the file, and the report says what changed. A file in a newer
format than this version knows is refused, never rewritten: an older Weightwarden must not guess.

    python -m weightwarden.agent.config_migrations FILE     (the package's postinst runs this on upgrade)
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

FORMAT_KEY = "format"

# One step: text in format i -> (text in format i + 1, what changed, {old key path: new key path} moved).
Step = Callable[[str], tuple[str, list[str], dict[tuple[str, ...], tuple[str, ...]]]]


class ConfigFormatError(ValueError):
    """The file cannot be brought forward: unreadable, not TOML, or written by a newer Weightwarden."""


class ConfigTooNewError(ConfigFormatError):
    """The config was written for a newer Weightwarden (like the database's SchemaTooNewError)."""


def _number_the_format(text: str) -> tuple[str, list[str], dict[tuple[str, ...], tuple[str, ...]]]:
    """Format 0 -> 1: the same keys, now with `format = 1` at the top (before any table, as TOML needs),
    after the file's opening comment block so that stays the first thing a reader sees."""
    numbered, count = re.subn(r"(?m)^format[ \t]*=[ \t]*0[ \t]*$", "format = 1", text, count=1)
    if count:  # written as format 0 by hand: only the number changes
        return numbered, ["format 0 -> 1 (no key changed)"], {}
    lines = text.splitlines(keepends=True)
    at = 0
    while at < len(lines) and lines[at].lstrip().startswith("#"):
        at += 1
    stamp = ["\n"] if at else []
    stamp += ["# The config file format (Weightwarden migrates older files on upgrade; never edit by hand).\n",
              "format = 1\n"]
    if at < len(lines) and lines[at].strip():
        stamp.append("\n")
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    return "".join(lines[:at] + stamp + lines[at:]), ["added format = 1 (the file had no format number)"], {}


MIGRATIONS: list[tuple[str, Step]] = [
    ("0001_number_the_format", _number_the_format),
]
CURRENT_FORMAT = len(MIGRATIONS)


def format_of(document: dict[str, Any], *, current: int = CURRENT_FORMAT) -> int:
    """The file's format number (0 without one); ConfigFormatError when it is not a number we may read."""
    value = document.get(FORMAT_KEY, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigFormatError(f"{FORMAT_KEY} must be a whole number (the config file format), got {value!r}")
    if value > current:
        raise ConfigTooNewError(
            f"config format {value} is newer than this Weightwarden understands (up to {current}): the file "
            "was written for a newer version. Install that version again, or restore the backup the upgrade "
            "left beside the file (config.toml.format<N>.bak)")
    return value


def format_problem(value: object) -> str | None:
    """For the loader: why a file's `format` value cannot be used as is (None: fine)."""
    try:
        format_of({FORMAT_KEY: value})
    except ConfigFormatError as error:
        return str(error)
    return None


@dataclass
class MigrationReport:
    path: str
    from_format: int
    to_format: int
    changes: list[str] = field(default_factory=list)
    backup: str | None = None

    def __str__(self) -> str:
        if self.from_format == self.to_format:
            return f"{self.path}: config format {self.to_format}, nothing to migrate"
        lines = [f"{self.path}: config migrated from format {self.from_format} to {self.to_format}"
                 f" (the original is kept as {self.backup})"]
        return "\n".join([*lines, *(f"  - {change}" for change in self.changes)])


def migrate_text(text: str, *, migrations: Sequence[tuple[str, Step]] = MIGRATIONS,
                 source: str = "config") -> tuple[str, int, int, list[str]]:
    """(new text, old format, new format, changes); raises ConfigFormatError, never loses a value."""
    old = _parse(text, source)
    version = format_of(old, current=len(migrations))
    leaves = _leaves(old)
    where = {path: path for path, _ in leaves}  # each original key -> where it is now
    changes: list[str] = []
    for name, step in migrations[version:]:
        text, said, renamed = step(text)
        changes += [f"{name}: {line}" for line in said]
        where = {original: renamed.get(now, now) for original, now in where.items()}
        _parse(text, f"{source} after {name}")  # a step that breaks the TOML is a bug: stop before writing
    new = _parse(text, source)
    lost = [path for path, value in leaves if path != (FORMAT_KEY,) and _lookup(new, where[path]) != value]
    if lost:
        raise ConfigFormatError(f"{source}: migrating would lose {', '.join('.'.join(p) for p in lost)}; "
                                "the file was left as it was")
    return text, version, len(migrations), changes


def migrate_file(path: str, *, migrations: Sequence[tuple[str, Step]] = MIGRATIONS) -> MigrationReport:
    """Bring a config file forward in place, keeping the original as PATH.format<N>.bak (same owner and
    mode: it may hold a SIEM token). A file already current is not touched."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigFormatError(f"{path}: cannot read: {error}") from None
    new_text, old_format, new_format, changes = migrate_text(text, migrations=migrations, source=path)
    report = MigrationReport(path, old_format, new_format, changes)
    if old_format == new_format:
        return report
    info = os.stat(path)
    report.backup = _free_name(f"{path}.format{old_format}.bak")
    _write_like(report.backup, data, info)
    _write_like(path + ".new", new_text.encode("utf-8"), info)
    os.replace(path + ".new", path)
    return report


def _write_like(path: str, data: bytes, like: os.stat_result) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(descriptor, data)
        if os.geteuid() == 0:
            os.fchown(descriptor, like.st_uid, like.st_gid)
        os.fchmod(descriptor, like.st_mode & 0o7777)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _free_name(path: str) -> str:
    """A backup never overwrites an earlier one (a second upgrade from the same format keeps both)."""
    candidate, number = path, 1
    while os.path.lexists(candidate):
        number += 1
        candidate = f"{path}.{number}"
    return candidate


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigFormatError(f"{source}: invalid TOML, nothing migrated: {error}") from None


def _leaves(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            found += _leaves(value, (*prefix, key))
        else:
            found.append(((*prefix, key), value))
    return found


def _lookup(table: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = table
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


_MISSING = object()


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when migrated or current (report on stdout), 2 with the reason when refused."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m weightwarden.agent.config_migrations CONFIG_FILE", file=sys.stderr)
        return 2
    try:
        report = migrate_file(args[0])
    except ConfigFormatError as error:
        message = str(error)
        print(f"weightwarden: {message if message.startswith(args[0]) else f'{args[0]}: {message}'}",
              file=sys.stderr)
        return 2
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CURRENT_FORMAT", "MIGRATIONS", "ConfigFormatError", "ConfigTooNewError", "format_of", "migrate_file",
           "migrate_text"]
