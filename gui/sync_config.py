"""Destination settings as the sync view edits them: typed values for the agent's `forward-set`, and the
same values as a [forward.NAME] TOML table, checked by the agent's own config rules (same messages, with
lines) before anything is sent.

Which fields a type shows comes from the agent's declaration of destination types
(agent/forward/destination_types.py); a field's type from the config schema.
"""

from __future__ import annotations

from typing import Any

from weightwarden.agent.config import FORWARD_KEYS, check_managed_destinations, forward_table_lines
from weightwarden.agent.forward.destination_types import DESTINATION_TYPES
from weightwarden.agent.located.problem import Problem

# The keys the form offers per destination type; everything else keeps its default.
FORM_KEYS = {name: kind.form for name, kind in DESTINATION_TYPES.items()}

def form_values(kind: str, values: dict[str, str]) -> dict[str, Any]:
    """The form's text fields as typed values; empty fields are left out (defaults apply). Text that is not
    a number where one belongs stays text, so the schema reports it instead of it being guessed away."""
    typed: dict[str, Any] = {"type": kind}
    for key in FORM_KEYS.get(kind, ()):
        raw = values.get(key, "").strip()
        if raw:
            typed[key] = _typed(FORWARD_KEYS[key].hint, raw)
    return typed


def _typed(hint: object, raw: str) -> object:
    if hint is int and raw.lstrip("-").isdigit():
        return int(raw)
    if hint is bool and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if hint is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def destination_toml(name: str, kind: str, values: dict[str, str]) -> str:
    """The [forward.NAME] table for the form's values, as the agent's drop-in writer writes it; empty fields
    are left out (defaults apply)."""
    return "\n".join(forward_table_lines(name, form_values(kind, values))) + "\n"


def validate(toml_text: str) -> list[Problem]:
    """Every problem the agent would report for this table, located in the snippet."""
    return check_managed_destinations("destination", toml_text)[1]


def form_text(values: dict[str, Any]) -> dict[str, str]:
    """A destination's settings (as the agent lists them) back into the form's text fields."""
    return {key: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for key, value in values.items()}
