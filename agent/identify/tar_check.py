"""Structural check for NeMo checkpoints: a tar whose members include model_config.yaml and
model_weights.ckpt. Member headers are 512-byte blocks; each names its size (octal), so the walk jumps
from header to header with one bounded read each, never reading member data."""

from __future__ import annotations

from typing import Any

from weightwarden.agent.safe_open import read_at

BLOCK = 512
MAX_MEMBERS = 256
NEMO_MEMBERS = ("model_config.yaml", "model_weights.ckpt")


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    names: list[str] = []
    position = 0
    for _ in range(MAX_MEMBERS):
        if position + BLOCK > size:
            break
        header = head[position:position + BLOCK] if position + BLOCK <= len(head) else read_at(fd, position, BLOCK)
        if len(header) < BLOCK or header == bytes(BLOCK):
            break  # end of archive
        if header[257:262] != b"ustar":
            return None
        try:
            member_size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            return None
        prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        names.append(f"{prefix}/{name}" if prefix else name)
        position += BLOCK + -(-member_size // BLOCK) * BLOCK
        if position > size:
            return None  # a member claims more bytes than the file has
    found = {name.removeprefix("./").rsplit("/", 1)[-1] for name in names}
    if not all(member in found for member in NEMO_MEMBERS):
        return None
    return {"member_count": len(names), "members": sorted(found)[:50]}
