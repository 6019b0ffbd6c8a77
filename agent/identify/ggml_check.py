"""Structural check for legacy GGML files: magic, version and plausible hyper-parameters.

Layouts (llama.cpp before GGUF): u32 magic; ggmf/ggjt/ggla/ggsn/ggsq then a u32 version (1..3 for
models, small for sessions); the unversioned "ggml" goes straight to the hyper-parameters (n_vocab,
n_embd, n_mult, n_head, n_layer, ... as i32). Session/state files hold cached prompts: flagged.
"""

from __future__ import annotations

import struct
from typing import Any

VARIANTS = {0x67676D6C: "ggml", 0x67676D66: "ggmf", 0x67676A74: "ggjt", 0x67676C61: "ggla",
            0x6767736E: "ggsn", 0x67677371: "ggsq"}
MAX_VOCAB = 10_000_000
MAX_DIM = 1 << 20


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if len(head) < 16:
        return None
    magic, second, third = struct.unpack_from("<III", head)
    variant = VARIANTS.get(magic)
    if variant is None:
        return None
    if variant in ("ggsn", "ggsq"):
        return {"variant": variant, "version": second, "session_state": True} if 1 <= second <= 16 else None
    if variant == "ggml":
        version, n_vocab, n_embd = None, second, third
    else:
        if not 1 <= second <= 3:
            return None
        version = second
        if variant == "ggla":
            return {"variant": variant, "version": version, "session_state": False, "adapter": True}
        if len(head) < 16:
            return None
        n_vocab, n_embd = struct.unpack_from("<II", head, 8)
    if not (1 <= n_vocab <= MAX_VOCAB and 1 <= n_embd <= MAX_DIM):
        return None
    return {"variant": variant, "version": version, "session_state": False, "adapter": False,
            "n_vocab": n_vocab, "n_embd": n_embd}
