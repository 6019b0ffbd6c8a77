"""Structural check for the Manifest.json of a CoreML .mlpackage directory.

An .mlpackage is a folder: Manifest.json names its items (itemInfoEntries: identifier -> {path, author,
description, name}) and which one is the model (rootModelIdentifier); the items live under Data/, the
model spec at Data/com.apple.CoreML/model.mlmodel and an ML program's weights under
Data/com.apple.CoreML/weights/. The manifest is the package's entry point, so it stands for the package;
the identifier also requires the root model item to exist beside it (siblings.py), since a manifest
copied on its own holds no model.
"""

from __future__ import annotations

import json
from typing import Any

from weightwarden.agent.identify.details import clip

MAX_ITEMS = 64


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if len(head) < size:
        return None  # manifests are small; one larger than the window is something else
    try:
        manifest = json.loads(head)
    except (ValueError, RecursionError):
        return None
    if not isinstance(manifest, dict):
        return None
    entries = manifest.get("itemInfoEntries")
    root = manifest.get("rootModelIdentifier")
    if not isinstance(entries, dict) or not isinstance(root, str) or not isinstance(entries.get(root), dict):
        return None
    root_path = entries[root].get("path")
    if not isinstance(root_path, str) or not _relative(root_path):
        return None
    item_paths = [clip(entry["path"], 256) for entry in list(entries.values())[:MAX_ITEMS]
                  if isinstance(entry, dict) and isinstance(entry.get("path"), str) and _relative(entry["path"])]
    version = manifest.get("fileFormatVersion")
    return {"role": "mlpackage-manifest", "root_model_path": clip(root_path, 256), "item_paths": item_paths,
            "file_format_version": clip(version, 32) if isinstance(version, str) else None}


def _relative(path: str) -> bool:
    """An item path that stays inside Data/: no absolute paths, no `..` steps."""
    return bool(path) and not path.startswith("/") and ".." not in path.split("/")
