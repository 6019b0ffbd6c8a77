"""Name the logical model a file belongs to, from where it lies and what it declares.

A first cut, good for the common layouts: the Hugging Face cache (`models--org--name`), sharded
checkpoints (`model-00001-of-00004.safetensors` -> the folder), Ollama blobs, and a declared name
(GGUF `general.name`). Anything else is named after its folder when the file name is generic
(`model.safetensors`, `pytorch_model.bin`), else after the file.
"""

from __future__ import annotations

import os
import re
from typing import Any

_HF_REPO = re.compile(r"(?:^|/)(models|datasets|spaces)--([^/]+?)--([^/]+)/(?:snapshots|blobs)/")
_SHARD = re.compile(r"-\d{5}-of-\d{5}(\.[^.]+)+$")
_GENERIC_STEMS = {
    "model", "models", "pytorch_model", "tf_model", "flax_model", "adapter_model", "weights", "consolidated",
    "checkpoint", "ckpt", "params", "diffusion_pytorch_model", "open_clip_pytorch_model", "last", "best",
}


def logical_model_name(path: str, details: dict[str, Any] | None = None) -> str:
    normalized = path.replace(os.sep, "/")
    hub = _HF_REPO.search(normalized)
    if hub:
        return f"{hub.group(2)}/{hub.group(3)}"
    if "/.ollama/models/blobs/" in normalized:
        return "ollama:" + os.path.basename(path)
    declared = (details or {}).get("name")
    if isinstance(declared, str) and declared.strip():
        return declared.strip()
    folder = os.path.basename(os.path.dirname(path)) or path
    name = os.path.basename(path)
    if _SHARD.search(name):
        return folder
    stem = name.split(".", 1)[0].lower()
    if stem in _GENERIC_STEMS or stem.startswith(("model-", "pytorch_model-", "consolidated.")):
        return folder
    return name.split(".", 1)[0] or name
