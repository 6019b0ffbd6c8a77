"""The protection policy: which inventoried model files the agent guards, and the reason it gives.

Policy as data (`[inventory] protect`, `private_hub_orgs`). Every model file enters the inventory through
InventoryUpkeep.accept (agent/pipeline/inventory_upkeep.py), whoever found it: the start-up scan of the
protected roots, a rescan, a file event, background discovery. That call asks `ProtectPolicy.decide`, and
only here is it decided:

1. `protect = "roots"`: protected when under a configured root ("configured root") or when it has the
   bytes (SHA-256, else quick fingerprint) of a protected file ("copy of protected ..."); anything else found
   is recorded, not protected ("outside the configured roots").
2. Under either policy a file with the bytes of a protected file is never public: moving a known private
   model into a forged hub-cache folder keeps it protected ("copy of protected ...").
3. `protect = "all-private"` (default): protected ("private (all-private policy)") unless public:
   - a Hugging Face hub cache blob (`.../models--ORG--NAME/blobs/<64 hex>`) whose SHA-256 equals its blob
     name (hashed, or for a safetensors blob accepted after the header's exact-size check: known_hashes.py)
     and whose ORG is not in `private_hub_orgs`: "public: Hugging Face repo ORG/NAME at REVISION";
   - an Ollama blob (`.../blobs/sha256-<hex>`) that a manifest of `registry.ollama.ai/library` names, with
     the size that manifest gives: "public: Ollama library model NAME:TAG";
   - a file with the bytes of a public file already known (a copy of public weights): "public: copy of ...".
   Offline this is all we can know: the layout says where the hub client put a file, not whether its repo is
   public. A private repo pulled from the hub into the cache is public to us unless its org is listed, and
   a never-seen model written straight into a forged cache folder is too; a known private one is not (1).

Public files are still inventoried, so a copy of public weights is recognised as public and not alerted on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from weightwarden.agent.events import ModelFile, Provenance
from weightwarden.agent.models.placement import place
from weightwarden.agent.paths import absolute

OLLAMA_LIBRARY = "registry.ollama.ai/library"
FINDERS = ("protected-root", "discovery", "file-event", "scan")


@dataclass(frozen=True, slots=True)
class Finder:
    """Who met a file: "discovery" (with its root and pass), "file-event" or "scan" (a rescan of `where`)."""

    found_by: str
    where: str | None = None
    pass_number: int | None = None


RESCAN = Finder("scan")


class ProtectPolicy:
    def __init__(self, protect: str = "all-private", roots: Iterable[str] = (),
                 private_hub_orgs: Iterable[str] = ()) -> None:
        if protect not in ("all-private", "roots"):
            raise ValueError(f"protect must be 'all-private' or 'roots', got {protect!r}")
        self.protect = protect
        self.roots = tuple(sorted({absolute(r) for r in roots}, key=len, reverse=True))  # innermost first
        self.private_hub_orgs = frozenset(org.lower() for org in private_hub_orgs)

    @property
    def discovers(self) -> bool:
        """Background discovery runs only when models outside the roots can be protected."""
        return self.protect == "all-private"

    def root_of(self, path: str) -> str | None:
        """The configured root `path` lies under (the innermost), or None."""
        for root in self.roots:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return root
        return None

    def decide(self, model: ModelFile, finder: Finder, same_bytes: Sequence[ModelFile] = ()) -> Provenance:
        """The provenance of `model`: who found it (a configured root wins over the finder, so the answer
        does not depend on which pass met the file first) and whether it is protected, with the reason.
        `same_bytes`: inventoried files with the same content (Inventory.matches)."""
        root = self.root_of(model.path)
        found = Finder("protected-root", root) if root is not None else finder
        protected, reason = self._protection(model, root, same_bytes)
        return Provenance(found.found_by, found.where, found.pass_number, protected, reason)

    def _protection(self, model: ModelFile, root: str | None, same_bytes: Sequence[ModelFile]) -> tuple[bool, str]:
        guarded = [f for f in same_bytes if f.protected]
        copy_of = f"copy of protected {guarded[0].model} ({guarded[0].path})" if guarded else ""
        if self.protect == "roots":
            if root is not None:
                return True, "configured root"
            if guarded:
                return True, copy_of
            return False, "outside the configured roots (protect = \"roots\")"
        public = self.public_origin(model)
        if public is not None:
            if guarded:  # a known private model in a hub-cache-shaped folder stays private
                return True, copy_of
            return False, f"public: {public}"
        if same_bytes and not guarded:  # the bytes of public weights known elsewhere
            source = same_bytes[0]
            why = source.provenance.reason if source.provenance is not None else ""
            if why.startswith("public: "):
                return False, f"public: copy of {source.path} ({why.removeprefix('public: ')})"
        return True, "private (all-private policy)"

    def public_origin(self, model: ModelFile) -> str | None:
        """What makes `model` public weights, or None (see the module's docstring)."""
        placement = place(model.path, model.details)
        if placement.kind == "hf-cache" and placement.repo_id and placement.known_sha256:
            org = placement.repo_id.split("/", 1)[0].lower()
            if org in self.private_hub_orgs or model.sha256 != placement.known_sha256:
                return None
            if os.path.basename(os.path.dirname(model.path)) != "blobs":
                return None
            revision = f" at {placement.revision}" if placement.revision else ""
            return f"Hugging Face repo {placement.repo_id}{revision}"
        if (placement.kind == "ollama" and placement.tag and placement.ollama_namespace == OLLAMA_LIBRARY
                and placement.expected_size == model.size and model.sha256 == placement.known_sha256):
            return f"Ollama library model {placement.tag}"
        return None
