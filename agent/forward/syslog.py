"""RFC 5424 syslog messages and RFC 5425/6587 octet-counted framing: pure functions, no I/O.

`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`. Our record id, sequence and kind travel in the private
SD element `weightwarden@32473` (32473 is the documentation enterprise number of RFC 5612; the SD-ID is
configurable for an organisation with its own). SD-PARAM values escape `"`, `\\` and `]`. The message body
is CEF or LEEF, UTF-8 with a BOM-less body (receivers differ on BOM handling; none needs it).
"""

from __future__ import annotations

from collections.abc import Sequence

from weightwarden.agent.forward import cef, leef
from weightwarden.agent.forward.fields import Flat
from weightwarden.agent.forward.text import LINE_BREAKS, well_formed

SD_ID = "weightwarden@32473"
APP_NAME = "weightwarden"
FACILITY_SECURITY = 10  # security/authorization (authpriv)
MAX_MESSAGE_BYTES = 8000  # receivers must take 2048 and should take 8192 octets


def syslog_severity(severity: int) -> int:
    """CEF 0..10 onto syslog's 0 (emergency) .. 7 (debug)."""
    if severity >= 9:
        return 2
    if severity >= 7:
        return 3
    if severity >= 4:
        return 4
    if severity >= 1:
        return 5
    return 6


_CONTROLS = {code: " " for code in [*range(0x20), *range(0x7F, 0xA0)]} | {ord(ch): " " for ch in LINE_BREAKS}


def escape_sd_value(value: str) -> str:
    """RFC 5424 escapes `"`, `\\` and `]`; control characters and line breaks have no escape (receivers
    rewrite them), so they become spaces: SD values are for routing and dedupe, the exact text travels in
    the CEF/LEEF body. A lone surrogate (not UTF-8) is written as the text `\\uXXXX`."""
    if not value.isprintable():
        value = well_formed(value).translate(_CONTROLS)
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def header_token(value: str | None, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most `limit` characters; `-` when empty."""
    cleaned = "".join(ch for ch in (value or "") if 33 <= ord(ch) <= 126)[:limit]
    return cleaned or "-"


def structured_data(sd_id: str, params: Sequence[tuple[str, str]]) -> str:
    body = " ".join(f'{name}="{escape_sd_value(value)}"' for name, value in params)
    return f"[{sd_id} {body}]"


def message(flat: Flat, *, host: str, procid: int | None, body_format: str = "cef",
            facility: int = FACILITY_SECURITY, sd_id: str = SD_ID) -> bytes:
    """One RFC 5424 message (without framing) carrying the record as CEF or LEEF."""
    pri = facility * 8 + syslog_severity(flat.severity)
    params = [("id", flat.id), ("seq", str(flat.sequence)), ("kind", flat.kind)]
    if flat.model is not None:
        params.append(("model", flat.model[:256]))
    head = (f"<{pri}>1 {flat.time} {header_token(host, 255)} {APP_NAME} "
            f"{header_token(str(procid) if procid else None, 128)} {header_token(flat.signature, 32)} "
            f"{structured_data(sd_id, params)} ")
    budget = MAX_MESSAGE_BYTES - len(head.encode())
    body = cef.render(flat, host, max_bytes=budget - 700) if body_format == "cef" else leef.render(flat, host)
    data = (head + body).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:  # LEEF values are capped per value; cut at a character boundary
        data = data[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return data


def octet_counted(payload: bytes) -> bytes:
    """RFC 5425 / RFC 6587 framing: `LEN SP MSG`."""
    return str(len(payload)).encode("ascii") + b" " + payload
