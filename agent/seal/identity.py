"""What a plain file is, read at seal time so the sealed file can carry it: SHA-256, format, model, prints.

The sealed header keeps the plaintext's identity (seal/container.py) so that the agent, which cannot read
the ciphertext without unwrapping the key, still knows a sealed file as the model it holds: the same
identification and naming as `weightwarden scan` (identify, models/placement), and the tensor prints from
the same single read that computes the SHA-256 (fingerprint/one_pass.py). Nothing here writes anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from weightwarden.agent.events import TensorPrint, display_path
from weightwarden.agent.fingerprint.sha256 import sha256_fd

if TYPE_CHECKING:
    from weightwarden.agent.identify import Identifier


@dataclass(frozen=True)
class PlainIdentity:
    sha256: str
    format: str | None = None
    model: str | None = None
    prints: tuple[TensorPrint, ...] = ()


class Describer:
    """Describes plain files before they are sealed; holds the compiled format rules (compiled once)."""

    def __init__(self, identifier: Identifier | None = None) -> None:
        self._identifier = identifier

    def __call__(self, fd: int, size: int, path: str) -> PlainIdentity:
        """Raises FileChangedError when the file changes while it is read (as sha256_fd does)."""
        # Imported here: identification loads the format rules and the layout parsers (half a second), which
        # verify, unseal and the agent's unseal service never need.
        from weightwarden.agent.fingerprint import hash_with_tensors
        from weightwarden.agent.identify import Identifier
        from weightwarden.agent.naming import logical_model_name
        from weightwarden.agent.scanner import tensor_plan_of

        if self._identifier is None:
            self._identifier = Identifier()
        found = self._identifier.identify_fd(fd, size, path)
        if found is None:
            return PlainIdentity(sha256_fd(fd, size))
        # As the scanner does: one read gives the SHA-256 and the prints (none when the header is over budget)
        digest, prints = hash_with_tensors(fd, size, found.format, plan=tensor_plan_of(fd, size, found, path))
        return PlainIdentity(digest, found.format, logical_model_name(display_path(os.path.abspath(path)),
                                                                      found.details), prints)


def bare_sha256(fd: int, size: int, path: str) -> PlainIdentity:
    """Only the SHA-256 (tests and callers that need no identity in the header)."""
    return PlainIdentity(sha256_fd(fd, size))
