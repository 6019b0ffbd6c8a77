"""Destination settings as the sync view edits them: a [forward.NAME] TOML table, checked by the agent's
own config loader (same rules, same messages, with lines) before anyone copies it into the config."""

from __future__ import annotations

import json
import os
import tempfile

from weightwarden.agent.config import ConfigProblem, check_config

# The keys the form offers per destination type; everything else keeps its default.
FORM_KEYS = {
    "syslog": ("address", "port", "transport", "format", "ca_file"),
    "hec": ("url", "token_file", "index", "format", "verify_tls"),
    "bulk": ("url", "api_key", "index", "format", "verify_tls"),
    "file": ("path", "format", "max_bytes"),
}
INTEGER_KEYS = frozenset({"port", "max_bytes"})
BOOLEAN_KEYS = frozenset({"verify_tls"})


def destination_toml(name: str, kind: str, values: dict[str, str]) -> str:
    """The [forward.NAME] table for the form's values; empty fields are left out (defaults apply)."""
    lines = [f"[forward.{name}]", f"type = {json.dumps(kind)}"]
    for key in FORM_KEYS.get(kind, ()):
        raw = values.get(key, "").strip()
        if not raw:
            continue
        if key in INTEGER_KEYS and raw.lstrip("-").isdigit():
            lines.append(f"{key} = {int(raw)}")
        elif key in BOOLEAN_KEYS and raw.lower() in ("true", "false"):
            lines.append(f"{key} = {raw.lower()}")
        else:
            lines.append(f"{key} = {json.dumps(raw)}")
    return "\n".join(lines) + "\n"


def validate(toml_text: str) -> list[ConfigProblem]:
    """Every problem the agent would report for this table, located in the snippet."""
    handle, path = tempfile.mkstemp(prefix="ww-destination-", suffix=".toml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(toml_text)
        return [ConfigProblem("destination", p.line, p.message) for p in check_config(path)]
    finally:
        os.unlink(path)
