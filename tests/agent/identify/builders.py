"""Fixture builders: each writes one file at `path` with the real library that produces that format.

Shared by the data-driven format tests, the look-alike tests and the robustness tests. Builders that need
torch skip the calling test when it is missing.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def safetensors_file(path: Path) -> None:
    from safetensors.numpy import save_file

    tensors: dict[str, Any] = {"w": np.arange(12, dtype=np.float32).reshape(3, 4),
                               "b": np.zeros(3, dtype=np.float16)}
    save_file(tensors, str(path), metadata={"format": "np", "owner": "research"})


def safetensors_with_appended_bytes(path: Path) -> None:
    """A polyglot: valid safetensors with a zip glued on after the data."""
    safetensors_file(path)
    with path.open("ab") as handle:
        handle.write(b"PK\x03\x04 smuggled payload")


def safetensors_empty(path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({}, str(path))


def safetensors_large(path: Path, megabytes: int = 50) -> None:
    from safetensors.numpy import save_file

    save_file({"big": np.zeros((megabytes << 20) // 4, dtype=np.float32)}, str(path))


def _gguf(path: Path, *, endian: Any = None, adapter: bool = False, vocabulary: int = 0) -> None:
    import gguf

    options = {} if endian is None else {"endianess": endian}
    writer = gguf.GGUFWriter(str(path), "llama", **options)
    writer.add_name("tiny-llama")
    if adapter:
        writer.add_type("adapter")
    if vocabulary:
        writer.add_token_list([f"token{index}" for index in range(vocabulary)])
    writer.add_tensor("blk.0.attn_q.weight", np.ones((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def gguf_file(path: Path) -> None:
    _gguf(path)


def gguf_big_endian(path: Path) -> None:
    import gguf

    _gguf(path, endian=gguf.GGUFEndian.BIG)


def gguf_adapter(path: Path) -> None:
    _gguf(path, adapter=True)


def gguf_large_vocabulary(path: Path) -> None:
    """The tokenizer's vocabulary (3 MB here) pushes the KV section past the 1 MiB window."""
    _gguf(path, vocabulary=200_000)


def gguf_split_first_shard(path: Path) -> None:
    """The first file of a split model (gguf-split layout: split.no / split.count keys)."""
    import gguf

    base = path.parent / "split" / "model.gguf"
    base.parent.mkdir()
    writer = gguf.GGUFWriter(base, "llama", split_max_tensors=1)
    writer.add_name("tiny-llama")
    writer.add_tensor("a", np.ones(4, dtype=np.float32))
    writer.add_tensor("b", np.ones(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (base.parent / "model-00001-of-00002.gguf").rename(path)


def _torch() -> Any:
    return pytest.importorskip("torch")


def pytorch_zip(path: Path) -> None:
    torch = _torch()
    torch.save({"w": torch.ones(3, 4), "b": torch.zeros(4)}, path)


def pytorch_zip_many_tensors(path: Path) -> None:
    """2000 storages: the central directory (~200 KB) no longer fits the 64 KiB tail window."""
    torch = _torch()
    torch.save({f"layer{index}.weight": torch.ones(2) for index in range(2000)}, path)


def pytorch_zip_with_foreign_member(path: Path) -> None:
    """An extra member outside the folder: torch.load refuses it until the member is deleted again, so
    adding one is a cheap way to hide a checkpoint from a strict identifier."""
    pytorch_zip(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("README.txt", "extra")


def pytorch_legacy(path: Path) -> None:
    torch = _torch()
    torch.save({"w": torch.ones(3)}, path, _use_new_zipfile_serialization=False)


def torchscript(path: Path) -> None:
    torch = _torch()
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, but TorchScript files are still around.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))


def numpy_npy(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, np.ones((2, 3), dtype=np.float32))


def numpy_npy_objects(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def numpy_npz(path: Path) -> None:
    with path.open("wb") as handle:
        np.savez(handle, weights=np.ones(3), bias=np.zeros(2))


def numpy_npz_compressed(path: Path) -> None:
    with path.open("wb") as handle:
        np.savez_compressed(handle, weights=np.ones(300))


def pickle_of_arrays(path: Path, protocol: int = 4) -> None:
    path.write_bytes(pickle.dumps({"w": np.ones((3, 3)), "b": np.zeros(3)}, protocol=protocol))


def pickle_protocol_2(path: Path) -> None:
    pickle_of_arrays(path, protocol=2)


def pickle_protocol_5(path: Path) -> None:
    pickle_of_arrays(path, protocol=5)


def pickle_larger_than_window(path: Path) -> None:
    """2.4 MB of inline array data: the opcode walk runs out of window before STOP."""
    path.write_bytes(pickle.dumps({"w": np.zeros(300_000)}, protocol=4))


def onnx_model(path: Path, width: int = 2) -> None:
    """Y = X @ W with W (2 x width) stored as an initializer inside the graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, width), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])], "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, width])],
        [weight])
    model = helper.make_model(graph, producer_name="weightwarden-tests",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # fixed, so the test does not depend on the onnx release's default
    onnx.save(model, str(path))


# Look-alikes: files that share a signature or a container with a model format but are not models.

def generic_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "hello")
        archive.writestr("b/c.txt", "world")


def docx_like_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("_rels/.rels", "<Relationships/>")
        archive.writestr("word/document.xml", "<w:document/>")


def zip_with_folder_but_no_version(path: Path) -> None:
    """One prefix folder and a data.pkl, but no version record: torch refuses it."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({}))
        archive.writestr("model/data/0", b"\0" * 16)


def zip_of_npy_with_wrong_magic(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.npy", b"not an array")


def hdf5_plain_data(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("measurements", data=np.arange(100.0))
        handle.attrs["experiment"] = "not a model"


def json_text(path: Path) -> None:
    path.write_text('{"weight_map": {"w": "model-00001-of-00002.safetensors"}}\n')


def text_starting_with_gguf(path: Path) -> None:
    path.write_text("GGUF is the llama.cpp model format; this is a note about it.\n")


def random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(7).bytes(64 << 10))


def truncated_safetensors(path: Path) -> None:
    """Cut in the middle of the tensor data (an interrupted copy)."""
    safetensors_file(path)
    data = path.read_bytes()
    path.write_bytes(data[:-10])


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def pickle_header_then_noise(path: Path) -> None:
    path.write_bytes(b"\x80\x04" + np.random.default_rng(3).bytes(4096))
