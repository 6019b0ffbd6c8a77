"""Splunk HTTP Event Collector envelopes: a pure function, no I/O.

A batch is the envelopes' JSON concatenated (not an array). `time` is epoch seconds with millisecond
decimals; our id, sequence and kind also go in `fields` (indexed fields) so searches can dedupe on them.
"""

from __future__ import annotations

from typing import Any

from weightwarden.agent.forward.fields import Flat
from weightwarden.agent.forward.text import json_bytes


def envelope(flat: Flat, body: dict[str, Any], *, host: str, source: str = "weightwarden",
             sourcetype: str | None = None, index: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "time": round(flat.time_ms / 1000, 3), "host": host, "source": source,
        "sourcetype": sourcetype or f"weightwarden:{flat.kind}", "event": body,
        "fields": {"weightwarden_id": flat.id, "weightwarden_sequence": flat.sequence,
                   "weightwarden_kind": flat.kind},
    }
    if index:
        item["index"] = index
    return item


def encode(item: dict[str, Any]) -> bytes:
    """One envelope as JSON; a batch is these concatenated."""
    return json_bytes(item)

