"""Structural check for OpenVINO IR: the XML's root element is <net name=... version=...> with layers."""

from __future__ import annotations

import re
from typing import Any

from weightwarden.agent.identify.details import clip

_NET = re.compile(rb"<net\s+([^>]{0,1024})>")
_ATTRIBUTE = re.compile(rb'(\w+)\s*=\s*"([^"]{0,256})"')
HEAD_BYTES = 64 << 10


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    start = head[:HEAD_BYTES]
    if not start.startswith(b"<?xml"):
        return None
    match = _NET.search(start, 0, 4096 + 1100)
    if match is None:
        return None
    attributes = {k.decode(): v.decode("utf-8", "replace") for k, v in _ATTRIBUTE.findall(match.group(1))}
    if "version" not in attributes or b"<layers" not in start[match.end():]:
        return None
    return {"name": clip(attributes.get("name", "")), "ir_version": clip(attributes["version"])}
