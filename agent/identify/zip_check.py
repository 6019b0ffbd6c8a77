"""Structural check for zip-based model formats: PyTorch checkpoints, TorchScript, NumPy .npz.

The member layout decides, read from the central directory (no member is decompressed):
- PyTorch (torch.save, zip serialization): members under one folder `<prefix>/` with `<prefix>/data.pkl`
  and `<prefix>/version` (or `<prefix>/.data/version`). Like torch's reader, the prefix is taken from the
  first member. torch.load refuses members outside that folder, but deleting them makes the file
  loadable again, so an added member must not hide the weights from us: they are counted
  (`foreign_members` > 0 is a tampering hint) rather than rejected.
- TorchScript: the same container plus `constants.pkl` or `code/` (mobile: `bytecode.pkl`).
- torch.export archives (`torch.export.save`, `.pt2`; torch/export/pt2_archive): the same container and
  prefix folder with `archive_format` (holding "pt2"), `archive_version`, `.data/version`, the programs as
  `models/<name>.json` and the weights as `data/weights/*` (no data.pkl). No id of their own in the format
  table: reported as pytorch-zip with "archive": "pt2" (the tensor layout reader finds no data.pkl and
  samples nothing; the file is still hashed).
- NumPy .npz: every member is `<name>.npy`; a stored first member must start with the .npy magic.
- Keras 3 (.keras): metadata.json, config.json and model.weights.h5 (or .npz) at the top level.
Other zips (docx, generic archives) are rejected.

The check is shared by the pytorch-zip, numpy-npz and keras-v3 candidates and names the format in details["format"].
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.identify.details import clip
from weightwarden.agent.identify.zip_directory import (
    Member,
    ZipError,
    ZipSource,
    find_central_directory,
    iter_members,
    read_member_start,
)

NPY_MAGIC = b"\x93NUMPY"
MAX_LISTED_ARRAYS = 50
_STORED = 0
# Records (below the prefix) that mark TorchScript; `model.json` is the v1.0/1.1 TorchScript layout.
_TORCHSCRIPT_RECORDS = ("constants.pkl", "bytecode.pkl", "model.json")
# Keras 3 saving_lib: these members at the top level, no prefix folder.
KERAS_V3_MEMBERS = {"metadata.json", "config.json"}
KERAS_V3_WEIGHTS = {"model.weights.h5", "model.weights.npz"}


@dataclass
class _Survey:
    """What one pass over the member list learnt."""

    first: Member
    prefix: str
    count: int = 0
    records: set[str] = field(default_factory=set)  # names below the prefix that we look for
    storage_count: int = 0
    foreign_members: int = 0
    has_code: bool = False
    exported_models: list[str] = field(default_factory=list)  # pt2: models/<name>.json
    all_npy: bool = True
    compressed: bool = False
    arrays: list[str] = field(default_factory=list)
    top_level: set[str] = field(default_factory=set)  # member names outside any folder (Keras v3)


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    source = ZipSource(fd, size, head, tail)
    try:
        directory = find_central_directory(source)
        survey = _survey(iter_members(directory))
        if survey is None:
            return None
        if survey.all_npy:
            return _numpy_npz(source, survey)
        if survey.top_level >= KERAS_V3_MEMBERS and survey.top_level & KERAS_V3_WEIGHTS:
            return {"format": "keras-v3", "member_count": survey.count,
                    "weights": sorted(survey.top_level & KERAS_V3_WEIGHTS)[0]}
        return _pytorch(survey, directory.zip64)
    except ZipError:
        return None


def _survey(members: Iterable[Member]) -> _Survey | None:
    survey: _Survey | None = None
    for member in members:
        if survey is None:
            survey = _Survey(first=member, prefix=member.name.split("/", 1)[0] + "/")
        _note(survey, member)
    return survey


def _note(survey: _Survey, member: Member) -> None:
    name = member.name
    survey.count += 1
    survey.compressed = survey.compressed or member.method != _STORED
    if "/" not in name and len(survey.top_level) < 64:
        survey.top_level.add(name)
    if name.endswith(".npy"):
        if len(survey.arrays) < MAX_LISTED_ARRAYS:
            survey.arrays.append(clip(name.removesuffix(".npy"), 256))
    else:
        survey.all_npy = False
    if name.startswith("code/"):
        survey.has_code = True  # TorchScript code outside the prefix folder
    if not name.startswith(survey.prefix):
        survey.foreign_members += 1
        return
    record = name[len(survey.prefix):]
    if record in ("data.pkl", "version", ".data/version", "archive_format", *_TORCHSCRIPT_RECORDS):
        survey.records.add(record)
    elif record.startswith("code/"):
        survey.has_code = True
    elif record.startswith("models/") and record.endswith(".json") and record.count("/") == 1:
        if len(survey.exported_models) < MAX_LISTED_ARRAYS:
            survey.exported_models.append(clip(record[len("models/"):-len(".json")], 256))
    elif record.startswith("data/") and not record.endswith(("/", ".json")) and "/sample_inputs/" not in record:
        survey.storage_count += 1


def _pytorch(survey: _Survey, zip64: bool) -> dict[str, Any] | None:
    records = survey.records
    if survey.prefix == "/" or "/" not in survey.first.name:
        return None  # torch refuses archives whose first member is not in a folder
    has_version = "version" in records or ".data/version" in records
    exported = "archive_format" in records and "data.pkl" not in records
    torchscript = not exported and (survey.has_code or any(record in records for record in _TORCHSCRIPT_RECORDS))
    if not has_version or not ("data.pkl" in records or "model.json" in records or exported):
        return None
    pt2 = {"archive": "pt2", "exported_models": survey.exported_models} if exported else {}
    return {
        "format": "torchscript" if torchscript else "pytorch-zip",
        **pt2,
        "prefix": clip(survey.prefix[:-1], 256),
        "member_count": survey.count,
        "storage_count": survey.storage_count,
        "foreign_members": survey.foreign_members,
        "torchscript": torchscript,
        "zip64": zip64,
    }


def _numpy_npz(source: ZipSource, survey: _Survey) -> dict[str, Any] | None:
    magic_checked = survey.first.method == _STORED
    # Compressed members would need inflating to see their magic; the member names suffice then.
    if magic_checked and read_member_start(source, survey.first, len(NPY_MAGIC)) != NPY_MAGIC:
        return None
    return {
        "format": "numpy-npz",
        "array_count": survey.count,
        "arrays": survey.arrays,
        "compressed": survey.compressed,
        "magic_checked": magic_checked,
    }
