"""The README documents every CLI command, so the docs cannot silently fall behind the code."""

from __future__ import annotations

import argparse
from pathlib import Path

from weightwarden.agent.cli.main import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def command_paths(parser: argparse.ArgumentParser, prefix: str = "weightwarden") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(command_paths(sub, f"{prefix} {name}"))
    return found


def test_every_command_is_in_the_readme() -> None:
    commands = command_paths(build_parser())
    assert "weightwarden scan" in commands and "weightwarden config check" in commands
    missing = [c for c in commands if f"`{c}" not in README]
    assert missing == []


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    first_block = README.split("```")[1]
    assert "bash installer/dev.sh run" in first_block and "bash installer/dev.sh test" in first_block
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "bash installer/dev.sh test" in ci
