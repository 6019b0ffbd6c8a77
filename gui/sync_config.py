"""Destination settings as the sync view edits them: typed values for the agent's `forward-set`, and the
same values as a [forward.NAME] TOML table, checked by the agent's own config rules (same messages, with
lines) before anything is sent.

Which fields a type shows comes from the agent's declaration of destination types
(agent/forward/destination_types.py); a field's type from the config schema.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from weightwarden.agent.config import FORWARD_KEYS, check_managed_destinations, forward_table_lines
from weightwarden.agent.forward.destination_types import DESTINATION_TYPES
from weightwarden.agent.forward.proxy_env import Proxy, ProxyConfigError, proxy_for
from weightwarden.agent.forward.tls_files import TLS_FILE_KEYS, tls_file_problems
from weightwarden.agent.located.problem import Problem

# The keys the form offers per destination type; everything else keeps its default.
FORM_KEYS = {name: kind.form for name, kind in DESTINATION_TYPES.items()}
# The keys whose values are a fixed list (the config schema's choices): the form offers them in a list.
CHOICE_KEYS = {key: FORWARD_KEYS[key].spec.choices for keys in FORM_KEYS.values() for key in keys
               if key != "format" and FORWARD_KEYS[key].spec.choices}
TLS_KEYS = (*TLS_FILE_KEYS, "server_name")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")

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


def form_problems(kind: str, values: Mapping[str, str]) -> list[str]:
    """What the config schema cannot see in a form, before the agent is asked: the TLS files as the agent
    will read them (docs/forwarding.md), a server_name that is no host name, TLS settings an http:// URL
    never uses, credentials of which only one is used. Empty when there is nothing to say."""
    shown = FORM_KEYS.get(kind, ())
    value = {key: values.get(key, "").strip() for key in shown}
    problems: list[str] = []
    files = {key: value.get(key, "") for key in TLS_FILE_KEYS if value.get(key)}
    missing = [key for key, path in files.items() if not os.path.exists(path)]
    problems += [f"{key}: {files[key]}: no such file" for key in missing]
    # A file this user may not read (a key only the agent reads) is left to the agent, which checks it when it
    # connects: the content is checked when every file given can be read here.
    if not missing and all(os.access(path, os.R_OK) for path in files.values()):
        problems += [f"{key}: {message}" for key, message in tls_file_problems(**files)]
    name = value.get("server_name", "")
    if name and not _host_name(name):
        problems.append(f"server_name: {name!r} is not a host name (no scheme, port or path: siem.example.org)")
    url = value.get("url", "")
    if url.lower().startswith("http://"):
        unused = [key for key in TLS_KEYS if value.get(key)]
        if unused:
            problems.append(f"{', '.join(unused)}: TLS settings, but the url is http://; use https:// or leave "
                            "them empty")
    if value.get("api_key") and value.get("username"):
        problems.append("api_key and username are both set: the api_key is sent, the username never; keep one")
    if bool(value.get("username")) != bool(value.get("password")) and "username" in shown:
        problems.append("username and password go together")
    return problems


def _host_name(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    labels = name.removesuffix(".").split(".")
    return len(name) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def proxy_note(kind: str, url: str, environ: Mapping[str, str] | None = None) -> str:
    """Which forward proxy the form's URL is reached through: the agent takes it from its own environment
    (HTTPS_PROXY, NO_PROXY: docs/forwarding.md), not from a key; this says what this app's environment
    would choose, which is the agent's when both run from the same session."""
    if "url" not in FORM_KEYS.get(kind, ()):
        return ""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "from the agent's environment (HTTPS_PROXY, NO_PROXY)"
    try:
        proxy: Proxy | None = proxy_for(parts.scheme, parts.hostname,
                                        os.environ if environ is None else environ)
    except ProxyConfigError as error:
        return f"refused: {error}"
    if proxy is None:
        return "none: connects directly (no proxy variable, or NO_PROXY names this host)"
    return f"{proxy.url} (from {proxy.variable}; the agent's service reads its own environment)"


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
