"""Where a model file sits says which logical model it belongs to, and sometimes its SHA-256.

- Hugging Face cache: `models--<org>--<name>/blobs/<etag>` (snapshots link into blobs). The repo id is the
  model's name; for LFS files the etag *is* the file's SHA-256, so the blob name is a known hash. The
  revision comes from `refs/main` (or from the snapshot folder the path goes through).
- Git LFS: an object in `<repo>/.git/lfs/objects/` takes its repository's name until its working-tree
  checkout is seen, whose name it then takes (git_lfs.py).
- Ollama: `<models>/blobs/sha256-<hex>`; manifests under `<models>/manifests/<registry>/<namespace>/<name>/<tag>`
  name the blobs of each `name:tag` with their sizes, which confirm the blob before its name is trusted.
- Sharded checkpoints (`model-00001-of-00004.*`, `*.index.json`) and generic file names take the folder's name;
  PEFT adapters (`adapter_config.json` beside) also record their declared base model.
- GGUF files declare `general.name`.
- Directory models are one model each: a SavedModel (the folder holding saved_model.pb; TF Serving's
  numbered version folders are named `<model>/<version>`) and a CoreML `.mlpackage`. Files that are models
  only through another file (OpenVINO .bin, Paddle .pdiparams, ONNX external data, TensorFlow data shards;
  identify/companions.py) name that file in details["part_of"] and join its model.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
import threading
from dataclasses import dataclass
from typing import Any

from weightwarden.agent.models import git_lfs
from weightwarden.agent.safe_open import open_regular, read_at

_HF_REPO = re.compile(r"(?:^|/)(models|datasets|spaces)--([^/]+?)--([^/]+)/(snapshots|blobs)/([^/]+)")
_HF_LFS_ETAG = re.compile(r"^[0-9a-f]{64}$")
_OLLAMA_BLOB = re.compile(r"^(.*)/blobs/sha256[-:]([0-9a-f]{64})$")
_SAVED_MODEL_ROLES = {"saved-model", "variables-index", "variables-data"}
_PAIR_KINDS = {"weights": "openvino", "parameters": "paddle", "external-data": "onnx-external-data",
               "mlpackage-item": "mlpackage"}
_SHARD = re.compile(r"-\d{5}-of-\d{5}(\.[^.]+)+$")
_GENERIC_STEMS = {
    "model", "models", "pytorch_model", "tf_model", "flax_model", "adapter_model", "weights", "consolidated",
    "checkpoint", "ckpt", "params", "diffusion_pytorch_model", "open_clip_pytorch_model", "last", "best",
}
MAX_SIDE_FILE_BYTES = 1 << 20  # config.json, adapter_config.json, manifests: small JSON only
MAX_MANIFESTS = 10_000


@dataclass(frozen=True)
class Placement:
    name: str  # the logical model
    kind: str  # hf-cache, ollama, git-lfs, sharded, adapter, declared, folder, file
    repo_id: str | None = None  # public Hugging Face repo id, when the file came from the hub cache
    revision: str | None = None
    tag: str | None = None  # ollama name:tag
    base_model: str | None = None  # adapters: the model they apply to, when declared
    known_sha256: str | None = None  # from a content-addressed blob name; trust only after `expected_size`
    expected_size: int | None = None  # what the manifest says the blob's size is (Ollama)
    ollama_namespace: str | None = None  # "<registry>/<namespace>" of the manifest naming an Ollama blob


def place(path: str, details: dict[str, Any] | None = None) -> Placement:
    normalized = path.replace(os.sep, "/")
    hub = _HF_REPO.search(normalized)
    if hub:
        return _hugging_face(normalized, hub)
    blob = _OLLAMA_BLOB.match(normalized)
    if blob:
        return _ollama(blob.group(1), blob.group(2))
    repository = git_lfs.repository_name(normalized)
    if repository is not None:  # the working-tree checkout names it once known (inventory_upkeep.py)
        return Placement(repository, "git-lfs")
    bundled = _bundle(normalized, details or {})
    if bundled is not None:
        return bundled
    declared = (details or {}).get("name")
    if isinstance(declared, str) and declared.strip():
        return Placement(declared.strip(), "declared")
    folder_path = os.path.dirname(normalized)
    folder = os.path.basename(folder_path) or normalized
    name = os.path.basename(normalized)
    adapter = read_json(os.path.join(folder_path, "adapter_config.json"))
    if adapter is not None:
        base = adapter.get("base_model_name_or_path")
        return Placement(folder, "adapter", base_model=base if isinstance(base, str) else None)
    if _SHARD.search(name) or name in _indexed_shards(folder_path):
        return Placement(folder, "sharded")
    stem = name.split(".", 1)[0].lower()
    if stem in _GENERIC_STEMS or stem.startswith(("model-", "pytorch_model-", "consolidated.")):
        return Placement(folder, "folder")
    return Placement(name.split(".", 1)[0] or name, "file")


def _bundle(normalized: str, details: dict[str, Any]) -> Placement | None:
    """Directory models and files that belong to another file's model."""
    role = details.get("role")
    if role in _SAVED_MODEL_ROLES:
        root = _saved_model_root(os.path.dirname(normalized))
        if root is not None:
            return Placement(_directory_model_name(root), "savedmodel")
    package = _mlpackage_root(normalized, role)
    if package is not None:
        return Placement(os.path.basename(package).removesuffix(".mlpackage") or package, "mlpackage")
    part_of = details.get("part_of")
    if isinstance(part_of, str) and part_of and (role in _PAIR_KINDS or role == "variables-data"):
        primary = posixpath.normpath(posixpath.join(posixpath.dirname(normalized), part_of))
        declared = details.get("name")
        owner = place(primary, {"name": declared} if isinstance(declared, str) else None)
        return Placement(owner.name, _PAIR_KINDS.get(str(role), owner.kind))
    return None


def _saved_model_root(folder: str) -> str | None:
    """The SavedModel folder a file in `folder` belongs to: the folder itself or, for variables/, its parent."""
    candidates = [folder]
    if os.path.basename(folder) == "variables":
        candidates.append(os.path.dirname(folder))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
            return candidate
    return None


def _directory_model_name(root: str) -> str:
    name = os.path.basename(root) or root
    if name.isdigit():  # TF Serving: <model>/<version>/saved_model.pb
        return f"{os.path.basename(os.path.dirname(root))}/{name}"
    return name


def _mlpackage_root(normalized: str, role: Any) -> str | None:
    """The .mlpackage folder of its manifest or of anything under its Data/ folder."""
    if role == "mlpackage-manifest":
        return os.path.dirname(normalized)
    data = normalized.rfind("/Data/")
    if data <= 0:
        return None
    root = normalized[:data]
    return root if os.path.isfile(os.path.join(root, "Manifest.json")) else None


def _hugging_face(normalized: str, hub: re.Match[str]) -> Placement:
    repo_id = f"{hub.group(2)}/{hub.group(3)}"
    repo_root = normalized[:hub.start(4)].rstrip("/")
    revision = hub.group(5) if hub.group(4) == "snapshots" else _read_text(f"{repo_root}/refs/main")
    etag = os.path.basename(normalized) if hub.group(4) == "blobs" else None
    known = etag if etag and _HF_LFS_ETAG.match(etag) else None
    return Placement(repo_id, "hf-cache", repo_id=repo_id, revision=revision, known_sha256=known)


def _ollama(models_root: str, digest: str) -> Placement:
    entry = _ollama_manifests(models_root).get(digest)
    if entry is None:
        return Placement("ollama:" + digest[:12], "ollama", known_sha256=digest)
    tag, size, namespace = entry
    return Placement(tag, "ollama", tag=tag, known_sha256=digest, expected_size=size, ollama_namespace=namespace)


def _indexed_shards(folder: str) -> frozenset[str]:
    """File names the folder's `*.index.json` files (Hugging Face sharded checkpoints) list in their
    weight_map: shards named freely still belong to the folder's model."""
    try:
        stamp = os.stat(folder).st_mtime_ns
    except OSError:
        return frozenset()
    return _index_entries(folder, stamp)


@functools.lru_cache(maxsize=1024)
def _index_entries(folder: str, stamp: int) -> frozenset[str]:
    try:
        indexes = [entry for entry in os.listdir(folder) if entry.endswith(".index.json")][:8]
    except OSError:
        return frozenset()
    names: set[str] = set()
    for index in indexes:
        weight_map = (read_json(os.path.join(folder, index)) or {}).get("weight_map")
        if isinstance(weight_map, dict):
            names.update(str(value) for value in weight_map.values())
    return frozenset(names)


_manifest_lock = threading.Lock()
_manifest_cache: dict[str, tuple[float, dict[str, tuple[str, int, str]]]] = {}


def _ollama_manifests(models_root: str) -> dict[str, tuple[str, int, str]]:
    """digest -> (name:tag, size, registry/namespace) for the model layers of every manifest; re-read when the
    folder changes."""
    folder = f"{models_root}/manifests"
    try:
        stamp = max(os.stat(root).st_mtime for root, _, _ in _walk(folder))
    except (OSError, ValueError):
        return {}
    with _manifest_lock:
        cached = _manifest_cache.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    found: dict[str, tuple[str, int, str]] = {}
    for root, _, files in _walk(folder):
        for tag in files:
            manifest = read_json(os.path.join(root, tag))
            if manifest is None:
                continue
            parts = os.path.relpath(root, folder).replace(os.sep, "/").split("/")
            # <registry>/<namespace>/<name>: the library namespace is left out, as `ollama list` does.
            name = parts[-1] if len(parts) < 2 or parts[-2] == "library" else "/".join(parts[-2:])
            namespace = "/".join(parts[-3:-1])
            for layer in manifest.get("layers", []) if isinstance(manifest.get("layers"), list) else []:
                if not isinstance(layer, dict) or not str(layer.get("mediaType", "")).endswith(".model"):
                    continue
                digest, size = str(layer.get("digest", "")), layer.get("size")
                if digest.startswith("sha256:") and type(size) is int:
                    found[digest[7:]] = (f"{name}:{tag}", size, namespace)
    with _manifest_lock:
        _manifest_cache[folder] = (stamp, found)
    return found


def _walk(folder: str) -> list[tuple[str, list[str], list[str]]]:
    return list(os.walk(folder))[:MAX_MANIFESTS]


def read_json(path: str) -> dict[str, Any] | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _read_text(path: str) -> str | None:
    """A small side file's text; never blocks on a FIFO (safe_open), follows a symlink only through
    realpath (Hugging Face snapshots link into blobs), and gives up on anything large. A missing file costs
    one stat and an unchanged one is read once: rescans of an unchanged tree stay stat calls."""
    real = os.path.realpath(path)
    try:
        info = os.stat(real)
    except OSError:
        return None
    return _read_unchanged(real, info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=4096)
def _read_unchanged(real: str, mtime_ns: int, size: int) -> str | None:
    try:
        fd, info = open_regular(real)
    except OSError:
        return None
    try:
        data = read_at(fd, 0, MAX_SIDE_FILE_BYTES + 1) if info.st_size <= MAX_SIDE_FILE_BYTES else b"x" * (
            MAX_SIDE_FILE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_SIDE_FILE_BYTES:
        return None
    return data.decode("utf-8", errors="replace").strip()
