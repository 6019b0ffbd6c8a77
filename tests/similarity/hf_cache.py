"""A Hugging Face hub cache entry laid out as `huggingface_hub.hf_hub_download` leaves it.

The layout (Hugging Face's "Hub Local Cache" reference, and huggingface_hub 2.4's file_download.py):

    <cache_root>/CACHEDIR.TAG                                   huggingface_hub tags its cache for backup tools
    <cache_root>/.locks/models--ORG--NAME/<etag>.lock           empty; the download lock stays behind
    <cache_root>/models--ORG--NAME/blobs/<etag>                 the bytes, once
    <cache_root>/models--ORG--NAME/snapshots/<revision>/<name>  -> ../../blobs/<etag> (relative symlink)
    <cache_root>/models--ORG--NAME/refs/main                    the 40-hex revision, no newline

A blob is named by the file's etag on the Hub: the SHA-256 of the content for a Git LFS file, the git blob
SHA-1 (`git hash-object`) for a file kept in git. Which files a repository keeps in LFS is its
.gitattributes' choice; `stored_in_lfs` is the usual one (weights by suffix, and anything over 10 MB).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by huggingface_hub.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/\n"
)
# Suffixes of the Hub's default .gitattributes that are model weights, and .gguf, which GGUF repositories add.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf", ".npz",
                ".npy", ".pkl", ".pickle", ".joblib", ".tflite", ".pb", ".ot", ".model", ".zip", ".tar", ".gz")
LFS_SIZE = 10 * 1024 * 1024


def stored_in_lfs(name: str, size: int) -> bool:
    return name.endswith(LFS_SUFFIXES) or size > LFS_SIZE


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def etag(name: str, data: bytes, lfs: Callable[[str, int], bool] = stored_in_lfs) -> str:
    return hashlib.sha256(data).hexdigest() if lfs(name, len(data)) else git_blob_sha1(data)


def hf_cache_entry(cache_root: Path, repo_id: str, files: Mapping[str, bytes | Path], revision: str, *,
                   repo_type: str = "model", ref: str = "main",
                   lfs: Callable[[str, int], bool] = stored_in_lfs) -> Path:
    """Put `files` (repository path -> content or a file to copy) in the cache as revision `revision` of
    `repo_id`, with `refs/<ref>` naming it. Returns the snapshot folder. Adding a second revision to the
    same repository shares the blobs that did not change, as the cache does."""
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        raise ValueError(f"a revision in the cache is a 40-hex commit hash, not {revision!r}")
    folder_name = "--".join([f"{repo_type}s", *repo_id.split("/")])
    folder = cache_root / folder_name
    snapshot = folder / "snapshots" / revision
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    locks = cache_root / ".locks" / folder_name
    locks.mkdir(parents=True, exist_ok=True)
    tag = cache_root / "CACHEDIR.TAG"
    if not tag.exists():
        tag.write_text(CACHEDIR_TAG)
    for name, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content
        blob_name = etag(name, data, lfs)
        blob = folder / "blobs" / blob_name
        if not blob.exists():
            blob.write_bytes(data)
        (locks / f"{blob_name}.lock").touch()
        pointer = snapshot / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if pointer.is_symlink() or pointer.exists():
            pointer.unlink()
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / ref).write_text(revision)
    return snapshot
