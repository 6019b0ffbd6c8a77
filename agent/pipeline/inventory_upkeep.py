"""Inventory upkeep: a model file found, gone or moved becomes the inventory's new state, the store's, and
the records that say so. It runs on the dispatcher's thread, the inventory's only writer, so every change
is made in the order of the observations that caused it.

Whether a model file is protected is the protection policy's decision (agent/models/protection.py), asked
here and nowhere else, whoever found the file (protected-root scan, rescan, file event, discovery); the
answer travels with the file as its Provenance (inventory, store, `weightwarden models`). Public weights are
kept in the inventory but are never the source of a copy alert.

Whether a new file copies a protected model is detection's decision (agent/detect/copy.py, severity from
the copy rule); this room only gathers the candidate: the files it matches byte for byte, else the models
whose tensors it holds, and the kind of place it landed in.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from datetime import datetime
from typing import Any

from weightwarden.agent.detect import posture
from weightwarden.agent.detect.copy import CopyCandidate
from weightwarden.agent.detect.places import destination_kind
from weightwarden.agent.detect.policy import Detector
from weightwarden.agent.events import (
    Action,
    Alert,
    Category,
    Event,
    ModelFile,
    ProcessInfo,
    Record,
    display_path,
    utc_now,
)
from weightwarden.agent.inventory import DERIVED_FROM, Inventory
from weightwarden.agent.models import git_lfs
from weightwarden.agent.models.protection import RESCAN, Finder, ProtectPolicy
from weightwarden.agent.pipeline.sealed_models import sealed_plaintext, unsealed
from weightwarden.agent.similarity.matcher import TensorMatch
from weightwarden.agent.store import RecordWriter

READERS_KEPT = 4096


class InventoryUpkeep:
    def __init__(self, inventory: Inventory, writer: RecordWriter, detector: Detector,
                 policy: ProtectPolicy | None = None) -> None:
        self.inventory = inventory
        self._writer = writer
        self._detector = detector
        self.policy = policy if policy is not None else ProtectPolicy()
        # The latest process to read each protected file (access events): who made a copy when the file
        # sensor could not say who wrote it (inotify, a share). Bounded: the oldest readers are forgotten.
        self._readers: OrderedDict[str, ProcessInfo] = OrderedDict()

    def note_reader(self, path: str, process: ProcessInfo) -> None:
        self._readers[path] = process
        self._readers.move_to_end(path)
        if len(self._readers) > READERS_KEPT:
            self._readers.popitem(last=False)

    def copy_alert(self, model: ModelFile, writer: ProcessInfo | None = None) -> Alert | None:
        """The copy alert for a file just identified (quick fingerprint, no tensors yet), or None."""
        if self.inventory.get(model.path) is not None:
            return None  # a known file changed in place: not a copy
        sources = [m for m in self.inventory.matches(model) if m.protected and not git_lfs.checkout_pair(model, m)]
        if not sources:  # nothing to copy from: spare the mount table and realpath of every new model file
            return None
        return self._detector.copy(CopyCandidate(model, tuple(sources), destination_kind=destination_kind(model.path),
                                                 process=self._who(writer, [s.path for s in sources])))

    def _who(self, writer: ProcessInfo | None, sources: list[str]) -> ProcessInfo | None:
        """Who made the copy: the latest reader of the protected files it copies when that is the writer
        (its open was held while it was looked at, so it is named as it ran; a writer looked up after it
        exited may be remembered as what it was before its last exec) or when no sensor named the writer;
        else the writer."""
        reader = next((self._readers[p] for p in sources if p in self._readers), None)
        if writer is None:
            return reader
        if reader is None or reader.pid != writer.pid:
            return writer
        if reader.user is None and writer.user is not None:  # the writer's user comes from the file it made
            return dataclasses.replace(reader, uid=writer.uid, user=writer.user)
        return reader

    def accept(self, model: ModelFile, action: Action, alert: Alert | None, *, alert_copies: bool,
               at: datetime, finder: Finder = RESCAN, writer: ProcessInfo | None = None) -> list[Record]:
        """Record a model file found at a path, protected or not as the policy decides; `model-copy` when it
        copies a protected model and no alert was raised for it yet (`alert`: the one an earlier look at this
        file raised)."""
        previous = self.inventory.get(model.path)
        same_bytes = self.inventory.matches(model)
        if previous is not None and _same_content(previous, model):
            return self._reconsider(previous, same_bytes)  # touched or re-read, nothing new
        # The same model at both ends of git-lfs (its object store and its checkout): not a copy, one name.
        pair = [m for m in same_bytes if git_lfs.checkout_pair(model, m)]
        same_bytes = [m for m in same_bytes if m not in pair]
        plaintext = sealed_plaintext(model, previous, self.inventory)
        if plaintext is not None:  # a sealed file is the model it holds, with that model's full prints
            model = dataclasses.replace(model, model=plaintext.model, tensors=plaintext.tensors or model.tensors)
            if plaintext is not previous and plaintext not in same_bytes:
                same_bytes = [*same_bytes, plaintext]  # sealed from a copy of a known file: a copy of it
        provenance = self.policy.decide(model, finder, same_bytes + pair)
        if previous is not None and previous.provenance is not None:  # changed in place: first finder stays
            provenance = dataclasses.replace(provenance, found_by=previous.provenance.found_by,
                                             where=previous.provenance.where,
                                             pass_number=previous.provenance.pass_number)
        model = dataclasses.replace(model, provenance=provenance)
        sources = [m for m in same_bytes if m.protected]
        # Not byte-identical: maybe converted, re-sharded, cast or partial (tensor fingerprints).
        derived = [] if same_bytes or pair or previous is not None else self._derived_matches(model)
        records: list[Record] = []
        if alert is None and alert_copies and previous is None:
            origins = [s.path for s in sources] or [p for match in derived for p in match.source_paths]
            alert = self._detector.copy(CopyCandidate(model, tuple(sources), tuple(derived),
                                                      destination_kind(model.path),
                                                      process=self._who(writer, origins)))
            if alert is not None:
                records.append(alert)
        details: dict[str, Any] = {"format_details": model.details, "found_by": provenance.describe(),
                                   "protected": provenance.protected, "protect_reason": provenance.reason}
        named = sources or same_bytes  # a copy of public weights is named after them too
        if named:
            model = dataclasses.replace(model, model=named[0].model)
            details["copy_of"] = named[0].shown
            details["confirmed_by_sha256"] = bool(model.sha256 and model.sha256 == named[0].sha256)
        elif pair:
            model = self._pair(model, pair, details)
        elif derived:
            # Named after its source and marked as derived: the similarity index holds the source, not its
            # copies (a quantised copy's changes from the public base are rounding, not a fine-tune).
            model = dataclasses.replace(model, model=derived[0].model,
                                        details={**model.details, DERIVED_FROM: derived[0].model})
            details["derived_from"] = {"model": derived[0].model,
                                       "paths": [display_path(p) for p in derived[0].source_paths[:20]],
                                       "tensor_share": round(derived[0].tensor_share, 4),
                                       "byte_share": round(derived[0].byte_share, 4)}
        if previous is not None:
            action = Action.MODEL_SEALED if plaintext is previous else Action.MODEL_MODIFIED
            if unsealed(model, previous):
                details["unsealed"] = True  # who asked is in the agent's model-unsealed record
        self.inventory.add(model)
        self._writer.submit_model_files([model], seen=at)  # before the records: a stored alert has its row
        records.append(Event(action, Category.FILE, f"{action.value.replace('-', ' ')}: {model.shown} "
                                                    f"({model.format})",
                             file=model.file_info(), model=model.model, details=details, time=at,
                             process=writer if action == Action.MODEL_SEALED else None))  # who sealed, if seen
        return records

    def _pair(self, model: ModelFile, pair: list[ModelFile], details: dict[str, Any]) -> ModelFile:
        """A git-lfs object and its checkout: named after the checkout (the object, first known by its
        repository's name, is renamed)."""
        details["git_lfs_pair_of"] = pair[0].shown
        if git_lfs.lfs_object(model.path) is not None:
            return dataclasses.replace(model, model=pair[0].model)
        renamed = [dataclasses.replace(m, model=model.model) for m in pair if m.model != model.model]
        for stored in renamed:
            self.inventory.add(stored)
        if renamed:
            self._writer.submit_model_files(renamed, seen=utc_now())
        return model

    def _reconsider(self, known: ModelFile, same_bytes: list[ModelFile]) -> list[Record]:
        """A known file met again: only its protection can have changed (the policy or its config did)."""
        if known.provenance is None:
            return []
        finder = Finder(known.provenance.found_by, known.provenance.where, known.provenance.pass_number)
        decided = self.policy.decide(known, finder, same_bytes)
        if (decided.protected, decided.reason) == (known.provenance.protected, known.provenance.reason):
            return []
        updated = dataclasses.replace(known, provenance=dataclasses.replace(
            known.provenance, protected=decided.protected, reason=decided.reason))
        self.inventory.add(updated)
        self._writer.submit_model_files([updated], seen=utc_now())
        return []

    def gone(self, path: str, is_directory: bool, *, reason: str, at: datetime) -> list[Record]:
        gone = self.inventory.under(path) if is_directory else [m for m in [self.inventory.get(path)] if m]
        for model in gone:
            self.inventory.remove(model.path)
        if gone:
            self._writer.submit_model_files_gone(m.path for m in gone)
        return [Event(Action.MODEL_DELETED, Category.FILE, f"model file {reason}: {model.shown}",
                      file=model.file_info(), model=model.model, time=at) for model in gone]

    def moved(self, src: str, dest: str, is_directory: bool, *, at: datetime) -> list[Record]:
        """Known model files moved (one, or all under a moved directory); [] when none was known."""
        moved = self.inventory.under(src) if is_directory else [m for m in [self.inventory.get(src)] if m]
        records: list[Record] = []
        for model in moved:
            new_path = dest + model.path[len(src):] if is_directory else dest
            self.inventory.remove(model.path)
            renamed = dataclasses.replace(model, path=new_path)
            self.inventory.add(renamed)
            self._writer.submit_model_files_gone([model.path])
            self._writer.submit_model_files([renamed], seen=at)
            records.append(Event(Action.MODEL_MOVED, Category.FILE,
                                 f"model file moved: {model.shown} -> {renamed.shown}",
                                 file=renamed.file_info(), previous_path=model.shown, model=model.model,
                                 details={"destination_kind": destination_kind(new_path)}, time=at))
        return records

    def posture(self, model: ModelFile, at: datetime) -> list[Record]:
        """Weak permissions or places of a newly inventoried model (agent/detect/posture.py), as events."""
        facts = posture.facts_of(model.path, destination_kind(model.path))
        return [Event(Action.POSTURE_FINDING, Category.HOST, finding.message, file=model.file_info(),
                      model=model.model, severity=finding.severity, details={"finding": finding.id}, time=at)
                for finding in (posture.findings(facts) if facts is not None else [])]

    def _derived_matches(self, model: ModelFile) -> list[TensorMatch]:
        """Known models whose tensors `model` holds, other than its own logical model (a converted sibling
        in the same repository or folder, say model.safetensors beside pytorch_model.bin, is not a copy)."""
        found = [m for m in self.inventory.tensor_matches(model) if m.model != model.model]
        if not found:
            return []
        protected = self.inventory.protected_paths()  # public weights are never the source of a copy
        return [m for m in found if any(p in protected for p in m.source_paths)]


def _same_content(a: ModelFile, b: ModelFile) -> bool:
    if a.sha256 and b.sha256:
        return a.sha256 == b.sha256 and a.size == b.size
    return a.quick_fingerprint == b.quick_fingerprint and a.size == b.size and a.mtime_ns == b.mtime_ns
