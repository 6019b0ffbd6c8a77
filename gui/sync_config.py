"""Destination settings as the sync view edits them: typed values for the agent's `forward-set`, and the
same values as a [forward.NAME] TOML table, checked by the agent's own config rules (same messages, with
lines) before anything is sent."""

from __future__ import annotations

import json
from typing import Any

from weightwarden.agent.config import check_managed_destinations
from weightwarden.agent.located.problem import Problem

# The keys the form offers per destination type; everything else keeps its default.
FORM_KEYS = {
    "syslog": ("address", "port", "transport", "format", "ca_file"),
    "hec": ("url", "token", "token_file", "index", "format", "verify_tls"),
    "bulk": ("url", "api_key", "index", "format", "verify_tls"),
    "file": ("path", "format", "max_bytes"),
}
INTEGER_KEYS = frozenset({"port", "max_bytes"})
BOOLEAN_KEYS = frozenset({"verify_tls"})
SECRET_KEYS = frozenset({"token", "api_key", "password"})


def form_values(kind: str, values: dict[str, str]) -> dict[str, Any]:
    """The form's text fields as typed values; empty fields are left out (defaults apply). Text that is not
    a number where one belongs stays text, so the schema reports it instead of it being guessed away."""
    typed: dict[str, Any] = {"type": kind}
    for key in FORM_KEYS.get(kind, ()):
        raw = values.get(key, "").strip()
        if not raw:
            continue
        if key in INTEGER_KEYS and raw.lstrip("-").isdigit():
            typed[key] = int(raw)
        elif key in BOOLEAN_KEYS and raw.lower() in ("true", "false"):
            typed[key] = raw.lower() == "true"
        else:
            typed[key] = raw
    return typed


def destination_toml(name: str, kind: str, values: dict[str, str]) -> str:
    """The [forward.NAME] table for the form's values; empty fields are left out (defaults apply)."""
    lines = [f"[forward.{name}]"]
    for key, value in form_values(kind, values).items():
        text = ("true" if value else "false") if isinstance(value, bool) else \
            str(value) if isinstance(value, int) else json.dumps(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def validate(toml_text: str) -> list[Problem]:
    """Every problem the agent would report for this table, located in the snippet."""
    return check_managed_destinations("destination", toml_text)[1]


def form_text(values: dict[str, Any]) -> dict[str, str]:
    """A destination's settings (as the agent lists them) back into the form's text fields."""
    return {key: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for key, value in values.items()}
