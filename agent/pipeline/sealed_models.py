"""A sealed file in the inventory is the model it holds (docs/sealing.md).

Its header names the plaintext's SHA-256 (identify/sealed_check.py puts it in details["sealed"]). When the
inventory knows that plaintext (the very file it replaced, or another plain copy), the sealed entry takes
its model name and its tensor prints: the inventory's prints carry the similarity corners and tensor names
the header leaves out (they are plaintext). Otherwise the header's name and prints stand.
"""

from __future__ import annotations

from weightwarden.agent.events import ModelFile
from weightwarden.agent.inventory import Inventory

SEALED = "sealed"


def plaintext_sha256(model: ModelFile) -> str | None:
    sealed = model.details.get("sealed") if model.format == SEALED else None
    digest = sealed.get("sha256") if isinstance(sealed, dict) else None
    return digest if isinstance(digest, str) else None


def sealed_plaintext(model: ModelFile, previous: ModelFile | None, inventory: Inventory) -> ModelFile | None:
    """The inventoried plain file `model` (a sealed file) holds: `previous` itself when the file was sealed
    in place, else a protected plain file with the same SHA-256; None when none is known."""
    digest = plaintext_sha256(model)
    if digest is None:
        return None
    if previous is not None and previous.format != SEALED and previous.sha256 == digest:
        return previous
    known = [m for m in inventory.with_sha256(digest) if m.format != SEALED]
    return next((m for m in known if m.protected), known[0] if known else None)


def unsealed(model: ModelFile, previous: ModelFile) -> bool:
    """Whether `model` is the plaintext of the sealed file `previous` it replaced."""
    return model.format != SEALED and model.sha256 is not None and plaintext_sha256(previous) == model.sha256
