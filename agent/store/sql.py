"""Running a migration's literal SQL inside the migration's transaction.

`sqlite3.Connection.executescript` would COMMIT first and run each statement on its own, so a migration
that fails halfway would stay half applied; this runs the statements one by one on the open transaction.
"""

from __future__ import annotations

import sqlite3
import textwrap

import sqlite_utils


def statements(script: str) -> list[str]:
    """The complete statements of `script`, in order (a trigger's body, semicolons and all, is one)."""
    found, pending = [], ""
    for line in textwrap.dedent(script).splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:80]}")
    return found


def run_script(db: sqlite_utils.Database, script: str) -> None:
    for statement in statements(script):
        db.execute(statement)
