"""The result of identifying one file: which model format it is and what the check learnt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.events import TensorPrint
from weightwarden.agent.fingerprint.tensors import TensorPlan


@dataclass(frozen=True)
class Identification:
    """A file recognised as a model artifact.

    `format` is an id from FORMATS.md. `confirmed` is True when a structural check accepted the file; False
    only when a rule matched a format that has no structural check yet (a weak, signature-only result).
    `details` holds what the check read from the header (tensor counts, architecture, ...) and contains
    only JSON-serialisable values, so it can go into events and forwarded records as is. `tensor_plan`
    is the tensor layout when the check already parsed the header for it (safetensors), so the
    fingerprint does not parse it a second time; `prints` are the tensor prints a sealed file's header
    carries for its plaintext; a file over its parse budget has details["over_budget"]
    and a plan that says so.
    """

    format: str
    confirmed: bool
    # A dict is unhashable, so leave it out of the generated __hash__.
    details: dict[str, Any] = field(default_factory=dict, hash=False)
    tensor_plan: TensorPlan | None = field(default=None, hash=False, compare=False, repr=False)
    # Prints the file states rather than holds (a sealed file's header: its plaintext's); its own bytes
    # give none.
    prints: tuple[TensorPrint, ...] = field(default=(), hash=False, compare=False, repr=False)
