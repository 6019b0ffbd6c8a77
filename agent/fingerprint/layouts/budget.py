"""The memory budget of the header parsers: what one file may make the agent hold while it is parsed.

The agent runs as root with several examination workers, and every header it parses was written by
someone else. Each parser therefore has a ceiling, documented in its module and in docs/design.md
("Memory budget per file"): a header bigger than the realistic cap, or a pickle whose opcodes would make
the unpickler build more than its budget, raises OverBudget before anything large is built. The caller
keeps the file (it is still identified and hashed) and reports the reason instead of the tensor prints.
"""

from __future__ import annotations


class OverBudget(Exception):
    """Parsing this file would exceed its memory budget; str(error) says which limit, for the report."""


def mib(count: int) -> str:
    """A byte count for a report: "17.1 MiB"."""
    return f"{count / (1 << 20):.1f} MiB"
