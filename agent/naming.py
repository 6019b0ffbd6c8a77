"""Name the logical model a file belongs to, from where it lies and what it declares.

Kept for callers of the first cut; the rules live in weightwarden.agent.models.placement.
"""

from __future__ import annotations

from typing import Any

from weightwarden.agent.models.placement import place


def logical_model_name(path: str, details: dict[str, Any] | None = None) -> str:
    return place(path, details).name
