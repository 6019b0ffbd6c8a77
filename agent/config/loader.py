"""Reading a config file into a Config: every problem in one pass, each with file and line (STYLE.md §5).

The file is read with the located TOML reader (located/toml_reader.py), each [section] checked against
the schema (schema.py, values.py), [forward.NAME] tables against their destination type
(forward_tables.py), and the app's drop-in of destinations merged last (drop_in.py).
"""

from __future__ import annotations

import os
from typing import Any

from weightwarden.agent import config_migrations
from weightwarden.agent.config.drop_in import with_managed
from weightwarden.agent.config.forward_tables import forward_destinations
from weightwarden.agent.config.schema import SCHEMA, SECTIONS, Config, requested_mode
from weightwarden.agent.config.values import check_value, closest, type_name
from weightwarden.agent.forward.tls_files import tls_file_problems
from weightwarden.agent.located.problem import LocatedError, Problem
from weightwarden.agent.located.toml_reader import LocatedToml, TomlProblems, decode, parse, read_bytes
from weightwarden.agent.paths import CONFIG_ENV, Mode, default_config_file, detect_mode


class ConfigError(LocatedError):
    """A config file could not be used; `problems` lists every reason found, in file order."""


def load_config(path: str | os.PathLike[str] | None = None, *, mode: str | None = None) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem.

    With no path, the default file for the mode is read, and the built-in defaults are returned when it
    does not exist. A file named explicitly (argument or $WEIGHTWARDEN_CONFIG) must exist: a typo in its
    name must not silently turn into default settings.
    """
    requested = requested_mode(mode)
    if path is None:
        path = default_config_file(requested or detect_mode())
        if not os.environ.get(CONFIG_ENV) and not os.path.lexists(path):
            return _raise_problems(with_managed(Config(requested_mode=requested)))
    config, problems = _load_file(os.fspath(path), requested)
    if config is None:
        raise ConfigError(problems)
    return _raise_problems(with_managed(config))


def check_config(path: str | os.PathLike[str]) -> list[Problem]:
    """Every problem in the file (empty when it is fine); never raises for bad content.

    Beyond what loading checks, the destinations' TLS files are read: one that cannot be used (unreadable,
    not PEM, an encrypted key) is reported at the line that names it. Loading does not read them: the agent
    reports them when it connects (a forward-health record, with the same file and line), and other users'
    tools must load a config whose key files only the agent may read."""
    file = os.fspath(path)
    config, problems = _load_file(file, None)
    if config is None:
        return problems
    config, problems = with_managed(config)
    return problems + _tls_file_problems(file, config)


def _tls_file_problems(file: str, config: Config) -> list[Problem]:
    found = []
    for destination in config.forward:
        for key, message in tls_file_problems(destination.ca_file, destination.client_cert, destination.client_key):
            place, _, line = destination.where(key).rpartition(":")
            found.append(Problem(place or file, int(line) if line.isdigit() else None,
                                 f"[forward.{destination.name}] {key}: {message}"))
    return found


def _raise_problems(loaded: tuple[Config, list[Problem]]) -> Config:
    config, problems = loaded
    if problems:
        raise ConfigError(problems)
    return config


def _load_file(file: str, requested: Mode | None) -> tuple[Config | None, list[Problem]]:
    try:
        data = read_bytes(file)
    except OSError as error:
        return None, [Problem(file, None, f"cannot read config file: {error.strerror or error}")]
    try:
        toml = parse(file, decode(file, data))
    except LocatedError as error:
        return None, error.problems
    return _build(file, toml, requested)


def _build(file: str, toml: LocatedToml, requested: Mode | None) -> tuple[Config | None, list[Problem]]:
    problems = TomlProblems(file, toml)
    sections: dict[str, Any] = {}
    for name, table in toml.document.items():
        if name == config_migrations.FORMAT_KEY:  # the file format number (config_migrations.py)
            if (refused := config_migrations.format_problem(table)) is not None:
                problems.add((name,), refused)
        elif name == "forward":
            sections["forward"] = forward_destinations(table, problems)
        elif name not in SECTIONS:
            problems.add((name,), _unknown_top_level(name, table))
        elif not isinstance(table, dict):
            problems.add((name,), f"[{name}] must be a table, got {type_name(table)}")
        else:
            sections[name] = SECTIONS[name](**_section_values(name, table, problems))
    if problems.found:
        return None, problems.in_file_order()
    explicit = frozenset(f"{name}.{key}" for name, table in toml.document.items()
                         if name in SECTIONS and isinstance(table, dict) for key in table)
    return Config(**sections, source=file, requested_mode=requested, explicit=explicit), []


def _section_values(section: str, table: dict[str, Any], problems: TomlProblems) -> dict[str, Any]:
    keys = SCHEMA[section]
    values: dict[str, Any] = {}
    for name, raw in table.items():
        if name not in keys:
            problems.add((section, name), _unknown_key(section, name))
            continue
        value, messages = check_value(f"[{section}] {name}", keys[name], raw)
        for message in messages:
            problems.add((section, name), message)
        if not messages:
            values[name] = value
    return values


def _unknown_top_level(name: str, value: object) -> str:
    known = ", ".join(f"[{section}]" for section in SECTIONS)
    if isinstance(value, dict):
        hint = closest(name, list(SECTIONS))
        suggestion = f" (did you mean [{hint}]?)" if hint else ""
        return f"unknown section [{name}]{suggestion}; known sections: {known}"
    # A key above the first header: most likely a section header was forgotten.
    owners = [section for section, keys in SCHEMA.items() if name in keys]
    suggestion = f" (did you mean to put it under [{owners[0]}]?)" if owners else ""
    return f"unknown top-level key {name!r}{suggestion}; settings go in sections: {known}"


def _unknown_key(section: str, name: str) -> str:
    known = list(SCHEMA[section])
    hint = closest(name, known)
    suggestion = f" (did you mean {hint!r}?)" if hint else ""
    return f"unknown key {name!r} in [{section}]{suggestion}; known keys: {', '.join(known)}"
