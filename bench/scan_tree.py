"""The scan benchmark's tree: 10,000 ordinary files over 100 directories plus 20 real model files.

Ordinary files are text, JSON, random binaries, zips and random-byte look-alikes named like models
(.bin, .pt, .safetensors, ...): only content may decide. The models are written by the real libraries.
Built once under --dir and reused while the manifest matches (`build_tree` returns the manifest).
"""

from __future__ import annotations

import json
import random
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import MB, log

VERSION = 1
SEED = 20240613
DIRECTORIES = 100  # 10 projects x 10 subdirectories
ZIPS = 50
LOOKALIKES = 300
TEXT_SHARE = 0.35
JSON_SHARE = 0.20
LOOKALIKE_NAMES = ("pytorch_model.bin", "model.safetensors", "model.pt", "weights.gguf", "model.onnx",
                   "embeddings.npy", "checkpoint.pth", "state.ckpt", "arrays.npz", "model.h5")
TEXT_SUFFIXES = (".txt", ".md", ".py", ".log", ".csv", ".yaml")
BINARY_SUFFIXES = (".dat", ".png", ".so", ".o", ".pack", "")
WORDS = (
    "model", "weights", "tensor", "layer", "attention", "token", "batch", "loss", "epoch", "gradient",
    "checkpoint", "dataset", "eval", "config", "shard", "optimizer", "scheduler", "learning", "rate",
    "warmup", "vocab", "embed", "head", "norm", "mlp", "rope", "cache", "the", "of", "and", "to", "in",
    "is", "for", "on", "with", "as", "by", "at", "from", "this", "that",
)


# --------------------------------------------------------------------------------------------- models

def _float32(rng: np.random.Generator, size_bytes: int) -> np.ndarray:
    return rng.standard_normal(size_bytes // 4, dtype=np.float32)


def _safetensors(path: Path, data: np.ndarray) -> None:
    from safetensors.numpy import save_file

    half = data.size // 2
    save_file({"model.embed.weight": data[:half], "model.head.weight": data[half:]}, str(path),
              metadata={"format": "pt"})


def _gguf(path: Path, data: np.ndarray) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(path.stem)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _torch(legacy: bool) -> Callable[[Path, np.ndarray], None]:
    def write(path: Path, data: np.ndarray) -> None:
        import torch

        state = {"encoder.weight": torch.from_numpy(data.copy()), "encoder.bias": torch.zeros(16)}
        torch.save(state, str(path), _use_new_zipfile_serialization=not legacy)
    return write


def _npy(path: Path, data: np.ndarray) -> None:
    with open(path, "wb") as out:
        np.save(out, data)


def _npz(path: Path, data: np.ndarray) -> None:
    half = data.size // 2
    with open(path, "wb") as out:
        np.savez(out, first=data[:half], second=data[half:])


def _onnx(path: Path, data: np.ndarray) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(data, name="W")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])], "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [data.size])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [data.size])],
        initializer=[weight])
    onnx.save(helper.make_model(graph, producer_name="weightwarden-bench"), str(path))


# (writer, file name, expected format) for the 20 models; two have names that say nothing.
MODELS: tuple[tuple[Callable[[Path, np.ndarray], None], str, str], ...] = (
    (_safetensors, "model-00001-of-00002.safetensors", "safetensors"),
    (_safetensors, "model-00002-of-00002.safetensors", "safetensors"),
    (_safetensors, "adapter_model.safetensors", "safetensors"),
    (_safetensors, "blob-7f3a", "safetensors"),
    (_gguf, "tinyllama-q8_0.gguf", "gguf"),
    (_gguf, "phi-mini.gguf", "gguf"),
    (_gguf, "notes.txt", "gguf"),
    (_torch(legacy=False), "pytorch_model.bin", "pytorch-zip"),
    (_torch(legacy=False), "checkpoint-500.pt", "pytorch-zip"),
    (_torch(legacy=False), "resnet.pth", "pytorch-zip"),
    (_torch(legacy=True), "legacy_model.bin", "pytorch-legacy"),
    (_torch(legacy=True), "old-checkpoint.pt", "pytorch-legacy"),
    (_torch(legacy=True), "vgg-legacy.pth", "pytorch-legacy"),
    (_npy, "embeddings.npy", "numpy-npy"),
    (_npy, "centroids.npy", "numpy-npy"),
    (_npz, "weights.npz", "numpy-npz"),
    (_npz, "optimizer-state.npz", "numpy-npz"),
    (_onnx, "model.onnx", "onnx"),
    (_onnx, "encoder.onnx", "onnx"),
    (_onnx, "decoder_model_merged.onnx", "onnx"),
)


def _write_models(root: Path, directories: list[Path], rng: np.random.Generator) -> list[dict[str, Any]]:
    sizes_mb = rng.permutation(np.arange(1, len(MODELS) + 1))  # 1..20 MB, one each
    written = []
    for index, ((write, name, expected), size_mb) in enumerate(zip(MODELS, sizes_mb, strict=True)):
        path = directories[(index * 37) % len(directories)] / name  # 37 is coprime with 100: 20 distinct dirs
        write(path, _float32(rng, int(size_mb) * MB))
        written.append({"path": str(path.relative_to(root)), "format": expected, "size": path.stat().st_size})
    return written


# ------------------------------------------------------------------------------------------- ordinary

def _text(rand: random.Random, size: int) -> bytes:
    words: list[str] = []
    length = 0
    while length < size:
        word = rand.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return (" ".join(words)[:size] + "\n").encode()


def _json(rand: random.Random, index: int) -> bytes:
    record = {"id": index, "name": " ".join(rand.choices(WORDS, k=3)),
              "values": [round(rand.random(), 6) for _ in range(rand.randint(1, 200))],
              "tags": rand.choices(WORDS, k=rand.randint(0, 8)), "ok": rand.random() > 0.5}
    return json.dumps(record, indent=rand.choice((None, 2))).encode()


def _zip(path: Path, rand: random.Random) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in range(3):
            archive.writestr(f"docs/part{member}.txt", _text(rand, rand.randint(200, 20_000)))


def _write_ordinary(directories: list[Path], count: int, rng: np.random.Generator, rand: random.Random
                    ) -> dict[str, int]:
    kinds = (["zip"] * ZIPS + ["lookalike"] * LOOKALIKES + ["text"] * int(count * TEXT_SHARE)
             + ["json"] * int(count * JSON_SHARE))
    kinds += ["binary"] * (count - len(kinds))
    rand.shuffle(kinds)
    tally: dict[str, int] = {}
    for index, kind in enumerate(kinds):
        directory = directories[index % len(directories)]
        tally[kind] = tally.get(kind, 0) + 1
        if kind == "text":
            path = directory / f"file{index:05d}{rand.choice(TEXT_SUFFIXES)}"
            path.write_bytes(_text(rand, rand.randint(64, 8192)))
        elif kind == "json":
            (directory / f"record{index:05d}.json").write_bytes(_json(rand, index))
        elif kind == "zip":
            _zip(directory / f"archive{index:05d}.zip", rand)
        else:
            if kind == "lookalike":
                path = directory / f"{index:05d}-{rand.choice(LOOKALIKE_NAMES)}"
            else:
                path = directory / f"blob{index:05d}{rand.choice(BINARY_SUFFIXES)}"
            path.write_bytes(rng.bytes(int(rng.integers(1024, 64 * 1024, endpoint=True))))
    return tally


# ------------------------------------------------------------------------------------------- the tree

def build_tree(base: Path, files: int) -> dict[str, Any]:
    """The tree under base/scan-tree (built now unless a matching one exists); returns its manifest."""
    root = base / "scan-tree"
    manifest_path = base / "scan-tree.manifest.json"
    spec = {"version": VERSION, "seed": SEED, "files": files, "models": len(MODELS)}
    if root.is_dir() and manifest_path.is_file():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("spec") == spec:
            log(f"reusing the tree at {root}")
            return manifest
    if root.exists():
        shutil.rmtree(root)
    log(f"building {files:,} files + {len(MODELS)} models under {root}")
    rng = np.random.default_rng(SEED)
    rand = random.Random(SEED)
    directories = [root / f"project{p:02d}" / f"part{d:02d}"
                   for p in range(10) for d in range(DIRECTORIES // 10)]
    for directory in directories:
        directory.mkdir(parents=True)
    tally = _write_ordinary(directories, files, rng, rand)
    models = _write_models(root, directories, rng)
    manifest = {"spec": spec, "root": str(root), "ordinary": tally, "models": models}
    manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest
