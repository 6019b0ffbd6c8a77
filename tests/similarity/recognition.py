"""The agent's view of the derived-model files: the public base in a Hugging Face cache, the private
fine-tune protected, every other file examined and matched as the agent does it (Scanner, ProtectPolicy,
Inventory). Shared by tests/similarity/test_recognition.py and bench/similarity.py."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from tests.similarity import derived
from tests.similarity.derived import Artefact
from weightwarden.agent.events import ModelFile
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.models.protection import Finder, ProtectPolicy
from weightwarden.agent.scanner import Scanner
from weightwarden.agent.similarity.matcher import TensorMatch

PUBLIC_REPO = "tinyllama-org/tiny-base"
REVISION = "5" * 40


@dataclass
class World:
    artefacts: list[Artefact]
    scanner: Scanner
    inventory: Inventory
    private: list[ModelFile]
    public: list[ModelFile]


def examine(scanner: Scanner, path: Path) -> ModelFile | None:
    found = scanner.examine(str(path))
    return found if isinstance(found, ModelFile) else None


def build(root: Path, transformations: tuple[str, ...] = tuple(derived.TRANSFORMATIONS)) -> World:
    artefacts = derived.write_all(root / "files", transformations)
    scanner = Scanner(Identifier(), FingerprintCache(), workers=2)
    policy = ProtectPolicy()  # the default: everything private but public weights
    inventory = Inventory()
    base = derived.write_safetensors(derived.public_base(), root / "base-download", "bf16")
    snapshot = derived.hf_cache_entry(root / "hub", PUBLIC_REPO, {"model.safetensors": base}, REVISION)
    public = [_accept(scanner, policy, inventory, Path(os.path.realpath(snapshot / "model.safetensors")))]
    (original,) = [a for a in artefacts if a.relation == "original"]
    private = [_accept(scanner, policy, inventory, path) for path in original.paths]
    return World(artefacts, scanner, inventory, private, public)


def _accept(scanner: Scanner, policy: ProtectPolicy, inventory: Inventory, path: Path) -> ModelFile:
    found = examine(scanner, path)
    assert found is not None, path
    decided = policy.decide(found, Finder("discovery"), inventory.matches(found))
    accepted = dataclasses.replace(found, provenance=decided)
    inventory.add(accepted)
    return accepted


def matches(world: World, artefact: Artefact) -> list[TensorMatch]:
    """Every match of the artefact's files, best first (the original's own files are not sources of
    themselves)."""
    found: list[TensorMatch] = []
    for path in artefact.paths:
        examined = examine(world.scanner, path)
        if examined is not None:
            found.extend(world.inventory.tensor_matches(examined))
    return sorted(found, key=lambda m: -m.similarity)
