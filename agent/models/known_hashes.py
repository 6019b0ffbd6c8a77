"""SHA-256 for free: content-addressed blob names already carry it (Hugging Face LFS etags, Ollama blobs).

A name is trusted only after a size check that a changed or truncated file would fail: an Ollama blob must
have the size its manifest records; a Hugging Face safetensors blob must be exactly as long as its header
says (the identify check's `appended_bytes == 0`). Other Hugging Face blobs are hashed as usual. Either way,
files from the hub cache record their public repo id, so public weights can be told from private ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.models.placement import place


@dataclass(frozen=True)
class KnownHash:
    sha256: str | None  # None: read the file to hash it
    details: dict[str, Any] = field(default_factory=dict)  # added to the file's details


def known_hash(path: str, format_id: str, details: dict[str, Any], size: int) -> KnownHash:
    placement = place(path, details)
    extra: dict[str, Any] = {}
    if placement.repo_id:
        extra["hf_repo"] = placement.repo_id
        if placement.revision:
            extra["hf_revision"] = placement.revision
    if placement.tag:
        extra["ollama_model"] = placement.tag
    if placement.known_sha256 is None:
        return KnownHash(None, extra)
    if placement.kind == "ollama":
        trusted = placement.expected_size == size
        source = "ollama blob name, size confirmed by its manifest"
    else:
        trusted = format_id == "safetensors" and details.get("appended_bytes") == 0
        source = "hugging face blob name (LFS etag), size confirmed by the safetensors header"
    if not trusted:
        return KnownHash(None, extra)
    return KnownHash(placement.known_sha256, {**extra, "sha256_source": source})
