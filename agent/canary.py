"""Canary models: decoy checkpoints that nobody has a reason to open.

`plant(path)` writes a valid safetensors file shaped like a small Llama-style checkpoint (embeddings,
attention and MLP projections, norms, lm_head) with float16 values drawn fresh from os.urandom, so every
planted canary is unique per host and per plant, and nothing in it says "decoy". The safetensors format is
written here (8-byte little-endian header length, JSON header padded to 8 bytes, raw little-endian data),
since the agent does not depend on the safetensors library. The registry (canaries.json in the data
folder) lists the planted paths with their SHA-256; the detection rule `canary-model-accessed` fires on
any open of one by anything but the agent.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightwarden.agent.events import display_path, format_time, utc_now

REGISTRY = "canaries.json"
SIZES = {  # hidden size, layers, vocabulary: about 20 MB, 90 MB and 300 MB
    "small": (256, 2, 32000),
    "medium": (512, 4, 32000),
    "large": (1024, 6, 32000),
}


@dataclass(frozen=True, slots=True)
class Canary:
    path: str
    sha256: str
    size: int
    planted: str


def _layout(hidden: int, layers: int, vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    mlp = hidden * 8 // 3 // 64 * 64 or 64
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        prefix = f"model.layers.{i}"
        shapes += [(f"{prefix}.input_layernorm.weight", (hidden,)),
                   (f"{prefix}.self_attn.q_proj.weight", (hidden, hidden)),
                   (f"{prefix}.self_attn.k_proj.weight", (hidden, hidden)),
                   (f"{prefix}.self_attn.v_proj.weight", (hidden, hidden)),
                   (f"{prefix}.self_attn.o_proj.weight", (hidden, hidden)),
                   (f"{prefix}.post_attention_layernorm.weight", (hidden,)),
                   (f"{prefix}.mlp.gate_proj.weight", (mlp, hidden)),
                   (f"{prefix}.mlp.up_proj.weight", (mlp, hidden)),
                   (f"{prefix}.mlp.down_proj.weight", (hidden, mlp))]
    return [*shapes, ("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]


def write_decoy(path: str, size: str = "small") -> str:
    """Write the decoy safetensors file at `path` (exclusively: never over an existing file); its SHA-256."""
    hidden, layers, vocab = SIZES[size]
    layout = _layout(hidden, layers, vocab)
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in layout:
        length = int(np.prod(shape)) * 2
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + length]}
        offset += length
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    rng = np.random.default_rng(int.from_bytes(secrets.token_bytes(16), "little"))
    digest = hashlib.sha256()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "wb") as handle:
        for chunk in (struct.pack("<Q", len(text)), text):
            handle.write(chunk)
            digest.update(chunk)
        for name, shape in layout:
            if name.endswith("norm.weight"):
                values = (1.0 + rng.normal(0, 0.02, shape)).astype("<f2")
            else:
                values = rng.normal(0, 0.02, shape).astype("<f2")
            data = values.tobytes()
            handle.write(data)
            digest.update(data)
    return digest.hexdigest()


def plant(path: str, data_dir: str, size: str = "small") -> Canary:
    """Write a decoy at `path` (a file, or model.safetensors inside a folder) and register it."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        target = os.path.join(target, "model.safetensors")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    digest = write_decoy(target, size)
    canary = Canary(os.path.realpath(target), digest, os.path.getsize(target), format_time(utc_now()))
    entries = [c for c in load_registry(data_dir) if c.path != canary.path]
    _save_registry(data_dir, [*entries, canary])
    return canary


def load_registry(data_dir: str) -> list[Canary]:
    try:
        with open(os.path.join(data_dir, REGISTRY), encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError):
        return []
    return [Canary(str(c["path"]), str(c["sha256"]), int(c["size"]), str(c["planted"]))
            for c in raw.get("canaries", []) if isinstance(c, dict)]


def _save_registry(data_dir: str, canaries: list[Canary]) -> None:
    os.makedirs(data_dir, exist_ok=True)
    final = os.path.join(data_dir, REGISTRY)
    temporary = final + f".{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({"canaries": [{"path": c.path, "sha256": c.sha256, "size": c.size, "planted": c.planted}
                                for c in canaries]}, handle, indent=1)
    os.replace(temporary, final)


class CanaryPaths:
    """The registered canary paths, re-read when the registry changes (a plant while the agent runs).

    Detection asks for every event; the registry is looked at (one stat) at most every RECHECK_SECONDS, so
    a canary planted while the agent runs counts within that time (its access marks take a second anyway).
    """

    RECHECK_SECONDS = 0.5

    def __init__(self, data_dir: str) -> None:
        self._file = os.path.join(data_dir, REGISTRY)
        self._data_dir = data_dir
        self._stamp: tuple[int, int] | None = None
        self._paths: frozenset[str] = frozenset()
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._checked < self.RECHECK_SECONDS:
            return self._paths
        self._checked = now
        try:
            info = os.stat(self._file)
            stamp = (info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                # as events show paths: a decoy whose name is not UTF-8 still matches its events
                self._paths = frozenset(display_path(c.path) for c in load_registry(self._data_dir)) \
                    if stamp else frozenset()
            return self._paths
