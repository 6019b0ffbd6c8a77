"""The catalog of logical models: the inventory's files grouped by the model they belong to, with what
the files declare (format, size, parameters, dtypes, architecture, Hugging Face repo and revision)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from weightwarden.agent.events import ModelFile
from weightwarden.agent.models.placement import place, read_json

UNDECIDED = "recorded before the protection policy (or by `scan`): protected"
BUNDLE_KINDS = {"savedmodel", "mlpackage", "openvino", "paddle", "onnx-external-data"}


@dataclass
class LogicalModel:
    name: str
    formats: list[str] = field(default_factory=list)
    files: int = 0
    size: int = 0
    parameters: int | None = None
    dtypes: list[str] = field(default_factory=list)
    architecture: str | None = None
    kind: str = "file"
    repo_id: str | None = None  # public Hugging Face id: weights anyone can download
    revision: str | None = None
    tag: str | None = None
    base_model: str | None = None
    paths: list[str] = field(default_factory=list)
    # Provenance (agent/models/protection.py): protected when any of its files is; why, and who found them.
    protected: bool = True
    protect_reasons: list[str] = field(default_factory=list)
    found_by: list[str] = field(default_factory=list)
    files_protected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def catalog(files: Iterable[ModelFile]) -> list[LogicalModel]:
    """One LogicalModel per model name, sorted by name."""
    groups: dict[str, list[ModelFile]] = {}
    for file in files:
        groups.setdefault(file.model, []).append(file)
    return [_summarise(name, sorted(members, key=lambda f: f.path)) for name, members in sorted(groups.items())]


def _summarise(name: str, files: list[ModelFile]) -> LogicalModel:
    model = LogicalModel(name=name, files=len(files), size=sum(f.size for f in files),
                         formats=sorted({f.format for f in files}), paths=[f.shown for f in files])
    per_format: dict[str, int] = {}
    dtypes: set[str] = set()
    reasons: dict[str, None] = {}
    finders: dict[str, None] = {}
    for file in files:
        provenance = file.provenance
        reasons[provenance.reason if provenance and provenance.reason else UNDECIDED] = None
        finders[provenance.describe() if provenance else "unknown"] = None
        model.files_protected += file.protected
        placement = place(file.path, file.details)
        # A directory or file-pair model names its kind through any of its files (the .bin of an IR pair).
        if model.kind not in BUNDLE_KINDS and (model.files == 1 or placement.kind != "file"):
            model.kind = placement.kind
        model.repo_id = model.repo_id or placement.repo_id
        model.revision = model.revision or placement.revision
        model.tag = model.tag or placement.tag
        model.base_model = model.base_model or placement.base_model
        count = _parameters(file)
        if count is not None:
            per_format[file.format] = per_format.get(file.format, 0) + count
        dtypes.update(_dtypes(file))
        model.architecture = model.architecture or _architecture(file)
    # The same weights in two formats (model.safetensors + pytorch_model.bin) are one set of parameters.
    model.parameters = max(per_format.values()) if per_format else None
    model.dtypes = sorted(dtypes)
    model.protected = model.files_protected > 0
    model.protect_reasons = list(reasons)
    model.found_by = list(finders)
    return model


def _parameters(file: ModelFile) -> int | None:
    declared = file.details.get("parameter_count")
    if type(declared) is int:
        return declared
    if file.tensors:
        return sum(t.elements for t in file.tensors)
    return None


def _dtypes(file: ModelFile) -> set[str]:
    found = file.details.get("dtypes")
    if isinstance(found, list):
        return {str(d) for d in found}
    single = file.details.get("dtype")
    return {str(single)} if isinstance(single, str) else set()


def _architecture(file: ModelFile) -> str | None:
    declared = file.details.get("architecture")
    if isinstance(declared, str) and declared:
        return declared
    for config_path in _config_candidates(file.path):
        config = read_json(config_path)
        if config is None:
            continue
        architectures = config.get("architectures")
        if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
            return architectures[0]
        if isinstance(config.get("model_type"), str):
            return str(config["model_type"])
    return None


def _config_candidates(path: str) -> list[str]:
    """config.json beside the file; for a Hugging Face blob, the config.json of the repo's snapshots."""
    folder = os.path.dirname(path)
    candidates = [os.path.join(folder, "config.json")]
    if os.path.basename(folder) == "blobs":
        snapshots = os.path.join(os.path.dirname(folder), "snapshots")
        try:
            revisions = sorted(os.listdir(snapshots))[:16]
        except OSError:
            revisions = []
        candidates += [os.path.join(snapshots, revision, "config.json") for revision in revisions]
    return candidates
