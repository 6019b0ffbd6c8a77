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


def torch_export_pt2(path: Path) -> None:
    """torch.export.save: the .pt2 archive current PyTorch writes for exported programs."""
    torch = _torch()
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export may warn about its own internals on some versions
        program = torch.export.export(module, (torch.randn(2, 4),))
        torch.export.save(program, str(path))


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


# More formats (FORMATS.md). Each is written by the library that writes it for real where one exists
# in the test environment; the exceptions say why.

def joblib_dump(path: Path, compress: Any = 0) -> None:
    joblib = pytest.importorskip("joblib")
    joblib.dump({"coef": np.ones((4, 3)), "intercept": np.zeros(3)}, path, compress=compress)


def joblib_zlib(path: Path) -> None:
    joblib_dump(path, compress=3)


def joblib_gzip(path: Path) -> None:
    joblib_dump(path, compress=("gzip", 3))


def joblib_xz(path: Path) -> None:
    joblib_dump(path, compress=("xz", 3))


def _flatbuffer(path: Path, identifier: bytes) -> None:
    flatbuffers = pytest.importorskip("flatbuffers")
    builder = flatbuffers.Builder(64)
    description = builder.CreateString("weightwarden test model")
    builder.StartObject(3)
    builder.PrependUint32Slot(0, 3, 0)  # version
    builder.PrependUOffsetTRelativeSlot(2, description, 0)
    root = builder.EndObject()
    builder.Finish(root, file_identifier=identifier)
    path.write_bytes(bytes(builder.Output()))


def tflite_flatbuffer(path: Path) -> None:
    _flatbuffer(path, b"TFL3")


def executorch_flatbuffer(path: Path) -> None:
    _flatbuffer(path, b"ET12")


def ggml_legacy(path: Path) -> None:
    """No maintained library writes pre-GGUF files any more: the header is packed as llama.cpp's
    convert script did (magic 'ggml' as native u32, then n_vocab, n_embd, n_mult, n_head, n_layer, ...)."""
    import struct

    path.write_bytes(struct.pack("<Iiiiiii", 0x67676D6C, 32000, 4096, 256, 32, 32, 128) + b"\0" * 256)


def ggjt_v3(path: Path) -> None:
    import struct

    path.write_bytes(struct.pack("<IIiiiiii", 0x67676A74, 3, 32000, 4096, 256, 32, 32, 128) + b"\0" * 256)


def llama_session(path: Path) -> None:
    import struct

    path.write_bytes(struct.pack("<III", 0x6767736E, 1, 0) + b"\0" * 256)


def _keras_like_h5(handle: Any, *, full_model: bool) -> None:
    """The attributes and groups keras' legacy H5 saving writes (keras/src/legacy/saving/legacy_h5_format.py)."""
    import json as json_module

    handle.attrs["keras_version"] = "3.6.0"
    handle.attrs["backend"] = "torch"
    if full_model:
        handle.attrs["model_config"] = json_module.dumps({"class_name": "Sequential", "config": {"layers": []}})
        weights = handle.create_group("model_weights")
    else:
        weights = handle
    weights.attrs["layer_names"] = [b"dense"]
    layer = weights.create_group("dense")
    layer.attrs["weight_names"] = [b"dense/kernel:0"]
    layer.create_dataset("dense/kernel:0", data=np.ones((4, 2), dtype=np.float32))


def keras_h5(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        _keras_like_h5(handle, full_model=True)


def keras_h5_weights_only(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        _keras_like_h5(handle, full_model=False)


def keras_v3(path: Path) -> None:
    """keras saving_lib's layout: metadata.json, config.json and model.weights.h5 (h5py) at the top level."""
    import io
    import json as json_module

    import h5py

    weights = io.BytesIO()
    with h5py.File(weights, "w") as handle:
        handle.create_dataset("layers/dense/vars/0", data=np.ones((4, 2), dtype=np.float32))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json_module.dumps({"keras_version": "3.6.0", "date_saved": "x"}))
        archive.writestr("config.json", json_module.dumps({"class_name": "Sequential", "config": {}}))
        archive.writestr("model.weights.h5", weights.getvalue())


def openvino_ir(path: Path) -> None:
    """The IR v11 XML (openvino is not a test dependency): written with xml.etree like any XML writer."""
    import xml.etree.ElementTree as ElementTree

    net = ElementTree.Element("net", name="tiny", version="11")
    layers = ElementTree.SubElement(net, "layers")
    ElementTree.SubElement(layers, "layer", id="0", name="x", type="Parameter", version="opset1")
    ElementTree.SubElement(net, "edges")
    ElementTree.ElementTree(net).write(path, xml_declaration=True, encoding="utf-8")


def nemo_archive(path: Path) -> None:
    import io
    import tarfile

    torch = _torch()
    weights = io.BytesIO()
    torch.save({"encoder.weight": torch.ones(4, 4)}, weights)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in (("./model_config.yaml", b"target: nemo.collections.asr.models.EncDecCTCModel\n"),
                           ("./model_weights.ckpt", weights.getvalue())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


# Look-alikes of the new formats.

def pickle_plain_data(path: Path) -> None:
    path.write_bytes(pickle.dumps({"run": "2026-11-29", "scores": [0.1, 0.2], "tags": {"a", "b"}}, protocol=4))


def gzip_text(path: Path) -> None:
    import gzip

    path.write_bytes(gzip.compress(b"just a log file\n" * 100))


def zlib_plain_pickle(path: Path) -> None:
    import zlib

    path.write_bytes(zlib.compress(pickle.dumps({"a": list(range(100))}, protocol=4)))


def random_with_flatbuffer_identifier(path: Path) -> None:
    data = bytearray(np.random.default_rng(11).bytes(4096))
    data[0:4] = (0xFFFF0000).to_bytes(4, "little")
    data[4:8] = b"TFL3"
    path.write_bytes(bytes(data))


def plain_tar(path: Path) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("notes/readme.txt")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))


def svg_xml(path: Path) -> None:
    path.write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>\n')


def zip_with_config_json_only(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("metadata.json", "{}")


def text_starting_with_lmgg(path: Path) -> None:
    path.write_text("lmgg is what 'ggml' looks like reversed on disk\n")


def sealed_safetensors(path: Path) -> None:
    """A safetensors model sealed in place by our own `seal` code (docs/sealing.md), for a throwaway key."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from weightwarden.agent.seal.inplace import seal_file

    safetensors_file(path)
    seal_file(str(path), [("machine", X25519PrivateKey.generate().public_key())], chunk_size=64)


def text_starting_with_wwseal(path: Path) -> None:
    """Our sealed magic and a plausible header length, then prose: no header, no chunks."""
    text = b'{"this is": "a note about the WWSEAL format, not a sealed file"}'
    path.write_bytes(b"WWSEAL\x00\x01" + len(text).to_bytes(4, "big") + text + b"\nmore notes\n" * 20)


def sealed_file_with_a_byte_cut(path: Path) -> None:
    """A sealed file one byte short: not its exact length, so not taken for one."""
    sealed_safetensors(path)
    path.write_bytes(path.read_bytes()[:-1])
