"""The fields a rule condition can read, flattened from an Event (ECS names, dotted).

Besides the event's own fields (event.action, file.path, process.name, details.bytes_sent, ...) the
engine adds derived ones: `process.tree` (the process tree's key: its session), `process.tree.names` and
`process.tree.executables` (the process and its parents), `process.program.name` and `process.script.name`
(the file names of the real program and of an interpreter's script), `process.tool` (which tool the process
is by its identity: detect/tools.py), `canary` (the file is a planted decoy),
`transfer.*` (a transfer tool's parsed command line) and `staging.*` (an archiver's parsed output).
"""

from __future__ import annotations

import os
from dataclasses import fields as dataclass_fields
from typing import Any

from weightwarden.agent.events import Event, FileInfo, ProcessInfo

# Names read with getattr: dataclasses.asdict deep-copies and was most of the engine's time per event.
_FILE_FIELDS = tuple(f.name for f in dataclass_fields(FileInfo))
_PROCESS_FIELDS = tuple(f.name for f in dataclass_fields(ProcessInfo) if f.name != "parents")


def tree_key(process: ProcessInfo | None) -> str | None:
    """Which process tree a process belongs to: its session (a terminal, a service), else its top ancestor."""
    if process is None:
        return None
    if process.session_id:
        return f"session:{process.session_id}"
    if process.parents:
        return f"pid:{process.parents[-1].pid}"
    return f"pid:{process.pid}"


def event_fields(event: Event) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event.action": str(event.action),
        "event.category": str(event.category),
        "event.severity": event.severity,
        "event.id": event.id,
        "model": event.model,
    }
    if event.file is not None:
        for key in _FILE_FIELDS:
            fields[f"file.{key}"] = getattr(event.file, key)
        fields["file.name"] = os.path.basename(event.file.path)
        fields["file.directory"] = os.path.dirname(event.file.path)
    process = event.process
    if process is not None:
        fields.update(process_fields(process))
    _flatten("details", event.details, fields)
    destination = event.details.get("destination")
    if isinstance(destination, dict):
        for key, value in destination.items():
            fields[f"destination.{key}"] = value
    return fields


def process_fields(process: ProcessInfo) -> dict[str, Any]:
    """The `process.*` fields of a process (what allowlists match: its real program, hash and user)."""
    fields: dict[str, Any] = {f"process.{key}": getattr(process, key) for key in _PROCESS_FIELDS}
    fields["process.tree"] = tree_key(process)
    fields["process.tree.names"] = [n for n in (process.name, *(p.name for p in process.parents)) if n]
    fields["process.tree.executables"] = [e for e in (process.executable, *(p.executable for p in process.parents))
                                          if e]
    fields["process.parent.name"] = process.parents[0].name if process.parents else None
    # The real program's and the script's file names (agent/executables.py): what it is, not its comm.
    program = process.program or process.executable
    fields["process.program"] = program  # the real program: the one `ld.so` loads, else the executable
    fields["process.program.name"] = os.path.basename(program) if program else None
    fields["process.script.name"] = os.path.basename(process.script) if process.script else None
    return fields


def _flatten(prefix: str, value: Any, into: dict[str, Any], depth: int = 0) -> None:
    if isinstance(value, dict) and depth < 4:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, into, depth + 1)
    else:
        into[prefix] = value
