"""Destinations configured from the app: the agent writes [forward.NAME] tables to a drop-in file in its data
dir (where a hardened service may write; 0640, it may hold credentials) and every load merges them after
the config file's own, checked by the same schema and reported with file and line the same way."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from weightwarden.agent.config.forward_tables import forward_destinations
from weightwarden.agent.config.schema import Config, ForwardDestination
from weightwarden.agent.located.problem import LocatedError, Problem
from weightwarden.agent.located.toml_reader import TomlProblems, decode, parse, read_bytes

MANAGED_DESTINATIONS = "destinations.toml"


def managed_destinations_file(config: Config) -> str:
    return os.path.join(config.data_dir, MANAGED_DESTINATIONS)


def check_managed_destinations(file: str, text: str, reserved: Iterable[str] = ()
                               ) -> tuple[tuple[ForwardDestination, ...], list[Problem]]:
    """The destinations of a managed drop-in's text and every problem in it; `reserved` are the names the
    config file itself defines (a drop-in may not redefine them)."""
    try:
        toml = parse(file, text)
    except LocatedError as error:
        return (), error.problems
    problems = TomlProblems(file, toml)
    found: tuple[ForwardDestination, ...] = ()
    for name, table in toml.document.items():
        if name == "forward":
            found = forward_destinations(table, problems)
        else:
            problems.add((name,), f"only [forward.NAME] tables belong in {file} (the agent writes it for the app); "
                                  f"found {name!r}")
    taken = set(reserved)
    for destination in found:
        if destination.name in taken:
            problems.add(("forward", destination.name), f"[forward.{destination.name}] is already defined in the "
                                                        "config file; edit it there")
    return tuple(dataclasses.replace(d, managed=True) for d in found), problems.in_file_order()


def with_managed(config: Config) -> tuple[Config, list[Problem]]:
    """The config with the drop-in's destinations added after its own, and the drop-in's problems."""
    file = managed_destinations_file(config)
    if not os.path.lexists(file) or not os.access(file, os.R_OK):
        return config, []  # none made yet; or another user's tool, which the drop-in's 0640 keeps out
    try:
        data = read_bytes(file)
    except OSError as error:
        return config, [Problem(file, None, f"cannot read: {error.strerror or error}")]
    try:
        text = decode(file, data)
    except LocatedError as error:
        return config, error.problems
    found, problems = check_managed_destinations(file, text, (d.name for d in config.forward))
    return dataclasses.replace(config, forward=config.forward + found), problems
