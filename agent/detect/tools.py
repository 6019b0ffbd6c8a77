"""Which tool a process is, by what it runs, never by what it is called.

The tool rules (transfer tools, archivers) used to look at the command name (comm) and argv[0], which the user
chooses: a copy of curl named `python3` was python, and `ld.so /usr/bin/curl` was ld.so. A process is now
judged by its identity (agent/executables.py, carried on ProcessInfo):

1. the SHA-256 of the real program (the executable, or the program `ld.so` loads) is a known tool's: that
   tool, whatever the file is called (`known` maps SHA-256 -> tool name: the tools installed on this machine,
   hashed by the agent, and any a rule or the config lists);
2. an interpreter running a script (`python3 /usr/local/bin/hf upload ...`): the script's name; `python -m
   module`: the module;
3. else the real program's file name (its path as the kernel reports it: renaming the file renames the
   tool, and then step 1 still knows it by content).

Only a process whose executable is unknown (gone before it could be read) is named by its command name,
and that is said (`identified_by="name"`). Pure: no I/O.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from weightwarden.agent.events import ProcessInfo
from weightwarden.agent.executables import split_invocation

# Modules run with `python -m` that are tools, by the tool's name.
MODULE_TOOLS = {"huggingface_hub.commands.huggingface_cli": "huggingface-cli", "huggingface_hub.cli.hf": "hf",
                "awscli": "aws", "gsutil": "gsutil"}
_LANGUAGE_KIND = {"python": "python", "shell": "shell", "perl": "perl"}


@dataclass(frozen=True, slots=True)
class ToolIdentity:
    name: str  # the tool's name: curl, rsync, hf, tar, ...
    args: tuple[str, ...]  # the tool's own arguments (after the loader, the interpreter and its options)
    identified_by: str  # sha256 | script | module | program | name


def _split(command_line: str | None) -> list[str]:
    if not command_line:
        return []
    try:
        return shlex.split(command_line)
    except ValueError:
        return command_line.split()


def identify_tool(process: ProcessInfo | None, known: Mapping[str, str] | None = None) -> ToolIdentity | None:
    """The tool `process` is (see the module docstring); None when nothing is known of it."""
    if process is None:
        return None
    argv = _split(process.command_line)
    program = process.program or process.executable
    start = 0  # where the real program's argv begins (after `ld.so [options]`)
    if process.program and process.executable and process.program != process.executable:
        at, _ = split_invocation("ld.so", argv)
        start = at if at is not None else len(argv)
    inner = argv[start:]
    digest = process.program_sha256
    if known and digest and digest.lower() in known:
        return ToolIdentity(known[digest.lower()], tuple(inner[1:]), "sha256")
    if process.interpreter in _LANGUAGE_KIND:
        at, args_at = split_invocation(_LANGUAGE_KIND[process.interpreter], inner)
        if at is not None:
            if process.interpreter == "python" and inner[at - 1:at] == ["-m"]:
                module = inner[at]
                return ToolIdentity(MODULE_TOOLS.get(module, module), tuple(inner[args_at:]), "module")
            script = process.script or inner[at]
            return ToolIdentity(os.path.basename(script), tuple(inner[args_at:]), "script")
        return ToolIdentity(os.path.basename(program or ""), tuple(inner[args_at:]), "program")
    if program:
        return ToolIdentity(os.path.basename(program.removesuffix(" (deleted)")), tuple(inner[1:]), "program")
    if process.name:
        return ToolIdentity(process.name, tuple(argv[1:]), "name")
    return None
