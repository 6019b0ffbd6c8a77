"""Write one set of tensors in every container and dtype, each with the library that produces it for real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

Tensors = dict[str, np.ndarray]


def model_tensors(seed: int = 0, layers: int = 4, width: int = 48) -> Tensors:
    """A small trained-looking model: random weights plus uniform norm scales and zero biases."""
    rng = np.random.default_rng(seed)
    tensors: Tensors = {"embed.weight": rng.standard_normal((128, width)).astype(np.float32)}
    for index in range(layers):
        tensors[f"layers.{index}.attn.weight"] = rng.standard_normal((width, width)).astype(np.float32) * 0.02
        tensors[f"layers.{index}.mlp.weight"] = rng.standard_normal((2 * width, width)).astype(np.float32) * 0.02
        tensors[f"layers.{index}.norm.weight"] = np.ones(width, dtype=np.float32)
        tensors[f"layers.{index}.mlp.bias"] = np.zeros(2 * width, dtype=np.float32)
    return tensors


def safetensors(path: Path, tensors: Tensors) -> Path:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def safetensors_torch_dtype(path: Path, tensors: Tensors, dtype: str) -> Path:
    """Cast with torch (bfloat16 has no numpy dtype) and save with safetensors.torch."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.from_numpy(v).to(getattr(torch, dtype)).contiguous() for k, v in tensors.items()},
              str(path))
    return path


def torch_zip(path: Path, tensors: Tensors, dtype: str = "float32") -> Path:
    torch = pytest.importorskip("torch")  # dev.sh installs the CPU build where it can

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: torch.from_numpy(v).to(getattr(torch, dtype)) for k, v in tensors.items()}, path)
    return path


def npz(path: Path, tensors: Tensors, dtype: type = np.float32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez(handle, **{k.replace(".", "_"): v.astype(dtype) for k, v in tensors.items()})
    return path


def gguf_file(path: Path, tensors: Tensors, dtype: type = np.float32) -> Path:
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("exported")
    for name, value in tensors.items():
        writer.add_tensor(name, value.astype(dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def shards(folder: Path, tensors: Tensors, count: int) -> list[Path]:
    """Hugging Face style: model-0000k-of-0000n.safetensors plus the index JSON with its weight_map."""
    import json

    names = list(tensors)
    paths, weight_map = [], {}
    for index in range(count):
        part = names[index::count]
        file_name = f"model-{index + 1:05d}-of-{count:05d}.safetensors"
        paths.append(safetensors(folder / file_name, {k: tensors[k] for k in part}))
        weight_map.update(dict.fromkeys(part, file_name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return paths
