"""Confirmations that look beside a file: for formats whose content alone is shared with look-alikes.

- A tensor bundle index (TensorFlow variables.index or a checkpoint's .index) ends with the same table
  magic as every LevelDB file, so it counts as a model only with a data shard (`<prefix>.data-0000k-of-0000n`
  with n = the header's num_shards) beside it, or inside a SavedModel (saved_model.pb in its folder or the
  folder above, for variables/).
- An .mlpackage's Manifest.json counts only when the root model item it names exists under Data/.

Only names are listed and stat'ed here; nothing beside the file is opened.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

DATA_SHARD = re.compile(r"^(?P<prefix>.+)\.data-(?P<shard>\d{5})-of-(?P<count>\d{5})$")
MAX_LISTED_NAMES = 100_000


def confirm_tensor_bundle(path: str | None, details: dict[str, Any]) -> dict[str, Any] | None:
    if details.get("role") != "variables-index":
        return details  # saved_model.pb: its content is enough
    if path is None:
        return None
    folder, name = os.path.split(path)
    prefix = name.removesuffix(".index")
    shards = own = 0
    for entry in _names(folder or "."):
        match = DATA_SHARD.match(entry)
        if match and int(match["count"]) == details["num_shards"]:
            shards += 1
            own += match["prefix"] == prefix
    saved_model = _saved_model_root(folder or ".")
    if not shards and saved_model is None:
        return None
    return {**details, "data_shards": own or shards, "in_saved_model": saved_model is not None}


def confirm_mlpackage(path: str | None, details: dict[str, Any]) -> dict[str, Any] | None:
    if details.get("role") != "mlpackage-manifest":
        return details  # an .mlmodel protobuf stands on its own
    if path is None:
        return None
    root_model = os.path.join(os.path.dirname(path), "Data", details["root_model_path"])
    return details if is_regular(root_model) else None


def _saved_model_root(folder: str) -> str | None:
    for candidate in (folder, os.path.dirname(folder) if os.path.basename(folder) == "variables" else None):
        if candidate is not None and is_regular(os.path.join(candidate, "saved_model.pb")):
            return candidate
    return None


def is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path, follow_symlinks=False).st_mode)
    except (OSError, ValueError):
        return False


def _names(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            names = []
            for entry in entries:
                names.append(entry.name)
                if len(names) >= MAX_LISTED_NAMES:
                    break
            return names
    except OSError:
        return []
