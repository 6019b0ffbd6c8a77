"""Structural check for Weightwarden's sealed container (agent/seal/container.py, docs/sealing.md).

The header is parsed by the container's own reader (every field type-checked, its length capped), and the
file must be exactly as long as the header's chunks make it: a cut or padded file is not taken for one. The
details say what the plaintext is, from the header: its format (`sealed_format`), its logical model (`name`,
which naming takes as the declared name), SHA-256 and size, and which keys can open it. Its tensor prints
travel separately (PRINTS_KEY), as a parsed tensor plan does, so they never enter event details.
"""

from __future__ import annotations

from typing import Any

from weightwarden.agent.seal.container import SealFormatError, read_header

PRINTS_KEY = "__tensor_prints__"


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    try:
        header, raw = read_header(fd)
    except (SealFormatError, OSError, MemoryError):
        return None
    if header.sealed_size(len(raw)) != size:
        return None
    details: dict[str, Any] = {
        "sealed": {"format": header.format, "sha256": header.sha256, "size": header.size,
                   "chunks": header.chunks, "keys": [{"kind": k.kind, "key_id": k.key_id} for k in header.keys]},
        "sealed_format": header.format or "unknown",
        PRINTS_KEY: header.prints,
    }
    if header.model:
        details["name"] = header.model
    return details
