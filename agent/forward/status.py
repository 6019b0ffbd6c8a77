"""Per destination, what the outbox says about delivery: `sync status`, the app's sync view, one source.

Read-only: cursors, totals, the last error and the records the destination refused (dead letters).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from weightwarden.agent.config import ForwardDestination
from weightwarden.agent.forward.destination_types import DESTINATION_TYPES
from weightwarden.agent.forward.destinations import format_of
from weightwarden.agent.store.outbox import Outbox

DEAD_LETTERS_SHOWN = 20  # newest first; the count is always the full one


def target(destination: ForwardDestination) -> str:
    """Where the destination's records go, as its type declares it (destination_types.DestinationType.target)."""
    where = DESTINATION_TYPES[destination.type].target
    if where == "address":
        return f"{destination.transport}://{destination.address}" + (f":{destination.port}" if destination.port else "")
    return str(getattr(destination, where))


def status_rows(database: str, destinations: Iterable[ForwardDestination],
                dead_letters: int = DEAD_LETTERS_SHOWN) -> list[dict[str, Any]]:
    """One row per destination; `dead_letter_list` holds its newest refused records (time, id, reason)."""
    outbox = Outbox(database, read_only=True)
    try:
        rows = []
        for destination in destinations:
            state = outbox.state(destination.name)
            last = outbox.after(state.cursor - 1, 1) if state and state.cursor else []
            rows.append({
                "destination": destination.name, "type": destination.type, "format": format_of(destination),
                "target": target(destination), "enabled": destination.enabled,
                "configured_in": "app" if destination.managed else "config file",
                "last_delivered_sequence": state.cursor if state else None,
                "last_delivered_id": last[0].id if state and last and last[0].sequence == state.cursor else None,
                "last_delivered_at": state.delivered_at if state else None,
                "backlog": state.backlog if state else outbox.last_sequence(),
                "delivered_total": state.delivered_total if state else 0,
                "last_error": state.last_error if state else None,
                "last_error_at": state.last_error_at if state else None,
                "dropped_total": state.dropped_total if state else 0,
                "dead_letters": state.dead_total if state else 0,
                "dead_letter_list": outbox.dead_letters(destination.name, dead_letters) if dead_letters else [],
            })
        return rows
    finally:
        outbox.close()
