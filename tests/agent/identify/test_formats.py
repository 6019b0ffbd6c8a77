"""Data-driven: every model format, written by its real library, is identified with the right id and
details, whatever the file is called (the extension never decides)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.agent.identify import builders
from weightwarden.agent.identify import Identification, Identifier


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], None]
    file_name: str
    format: str
    details: dict[str, Any] = field(default_factory=dict)  # expected subset of the details

    @property
    def id(self) -> str:
        return self.build.__name__


CASES = [
    Case(builders.safetensors_file, "model.safetensors", "safetensors", {
        "tensor_count": 2, "parameter_count": 15, "dtypes": ["F16", "F32"],
        "metadata": {"format": "np", "owner": "research"}, "appended_bytes": 0}),
    Case(builders.safetensors_with_appended_bytes, "model.safetensors", "safetensors",
         {"tensor_count": 2, "appended_bytes": 21}),
    Case(builders.safetensors_empty, "empty.safetensors", "safetensors", {"tensor_count": 0, "dtypes": []}),
    Case(builders.sealed_safetensors, "tiny-llama.bin", "sealed", {"sealed_format": "safetensors",
                                                                   "name": "tiny-llama"}),
    Case(builders.gguf_file, "model.gguf", "gguf", {
        "version": 3, "byte_order": "little", "tensor_count": 1, "architecture": "llama",
        "name": "tiny-llama", "type": None, "kv_truncated": False}),
    Case(builders.gguf_big_endian, "model-be.gguf", "gguf",
         {"byte_order": "big", "tensor_count": 1, "architecture": "llama", "name": "tiny-llama"}),
    Case(builders.gguf_adapter, "lora.gguf", "gguf", {"type": "adapter", "architecture": "llama"}),
    Case(builders.gguf_large_vocabulary, "vocab.gguf", "gguf",
         {"kv_truncated": True, "architecture": "llama", "tensor_count": 1}),
    Case(builders.gguf_split_first_shard, "model-00001-of-00002.gguf", "gguf",
         {"split": {"no": 0, "count": 2, "tensors_count": 2}}),
    Case(builders.pytorch_zip, "model.pt", "pytorch-zip",
         {"storage_count": 2, "torchscript": False, "foreign_members": 0}),
    Case(builders.pytorch_zip_many_tensors, "pytorch_model.bin", "pytorch-zip", {"storage_count": 2000}),
    Case(builders.pytorch_zip_with_foreign_member, "model.pt", "pytorch-zip",
         {"storage_count": 2, "foreign_members": 1}),
    Case(builders.pytorch_legacy, "legacy.pth", "pytorch-legacy", {"pickle_protocol": 2}),
    Case(builders.torchscript, "scripted.pt", "torchscript", {"torchscript": True}),
    Case(builders.torch_export_pt2, "model.pt2", "pytorch-zip",
         {"archive": "pt2", "exported_models": ["model"], "storage_count": 2, "torchscript": False}),
    Case(builders.numpy_npy, "array.npy", "numpy-npy",
         {"dtype": "<f4", "shape": [2, 3], "fortran_order": False, "object_dtype": False}),
    Case(builders.numpy_npy_objects, "objects.npy", "numpy-npy", {"dtype": "|O", "object_dtype": True}),
    Case(builders.numpy_npz, "arrays.npz", "numpy-npz",
         {"array_count": 2, "arrays": ["weights", "bias"], "compressed": False, "magic_checked": True}),
    Case(builders.numpy_npz_compressed, "arrays.npz", "numpy-npz",
         {"array_count": 1, "compressed": True, "magic_checked": False}),
    Case(builders.pickle_of_arrays, "model.pkl", "pickle", {"protocol": 4, "reached_stop": True}),
    Case(builders.pickle_protocol_2, "model.pkl", "pickle", {"protocol": 2, "reached_stop": True}),
    Case(builders.pickle_protocol_5, "model.pkl", "pickle", {"protocol": 5, "reached_stop": True}),
    Case(builders.pickle_larger_than_window, "big.pkl", "pickle", {"protocol": 4, "reached_stop": False}),
    Case(builders.onnx_model, "model.onnx", "onnx", {
        "ir_version": 10, "producer_name": "weightwarden-tests",
        "opset_import": [{"domain": "", "version": 17}]}),
    Case(builders.joblib_dump, "model.joblib", "joblib", {"protocol": 4}),
    Case(builders.joblib_zlib, "model.joblib", "joblib", {"compression": "zlib"}),
    Case(builders.joblib_gzip, "model.joblib", "joblib", {"compression": "gzip"}),
    Case(builders.joblib_xz, "model.joblib", "joblib", {"compression": "xz"}),
    Case(builders.tflite_flatbuffer, "model.tflite", "tflite", {"fields": 3}),
    Case(builders.executorch_flatbuffer, "model.pte", "executorch", {"extended_header": False}),
    Case(builders.ggml_legacy, "ggml-model-f16.bin", "ggml", {"variant": "ggml", "n_vocab": 32000}),
    Case(builders.ggjt_v3, "ggml-model-q4_0.bin", "ggml", {"variant": "ggjt", "version": 3}),
    Case(builders.llama_session, "prompt.session", "ggml", {"variant": "ggsn", "session_state": True}),
    Case(builders.keras_h5, "model.h5", "keras-h5", {"weights_only": False, "user_block": 0}),
    Case(builders.keras_h5_weights_only, "model.weights.h5", "keras-h5", {"weights_only": True}),
    Case(builders.keras_v3, "model.keras", "keras-v3", {"weights": "model.weights.h5"}),
    Case(builders.openvino_ir, "model.xml", "openvino-ir", {"name": "tiny", "ir_version": "11"}),
    Case(builders.nemo_archive, "model.nemo", "nemo", {"members": ["model_config.yaml", "model_weights.ckpt"]}),
]
RENAMES = ["weights.bin", "notes.txt", "model"]


def identify_built(identifier: Identifier, case: Case, directory: Path, name: str) -> Identification | None:
    path = directory / case.file_name
    case.build(path)
    if name != case.file_name:
        path = path.rename(directory / name)
    return identifier.identify_path(str(path))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_format_is_identified(identifier: Identifier, tmp_path: Path, case: Case) -> None:
    result = identify_built(identifier, case, tmp_path, case.file_name)

    assert result is not None
    assert (result.format, result.confirmed) == (case.format, True)
    assert {key: result.details.get(key) for key in case.details} == case.details
    json.dumps(result.details)  # details travel in events: JSON only


@pytest.mark.parametrize("name", RENAMES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_extension_never_decides(identifier: Identifier, tmp_path: Path, case: Case, name: str) -> None:
    result = identify_built(identifier, case, tmp_path, name)

    assert result is not None and result.format == case.format


def test_every_pickle_reports_numpy_globals(identifier: Identifier, tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    builders.pickle_of_arrays(path)

    result = identifier.identify_path(str(path))

    assert result is not None
    assert "numpy.ndarray" in result.details["uses_globals"]
    assert "numpy.dtype" in result.details["uses_globals"]


def test_pickle_of_arrays_is_a_pickle_not_legacy_torch(identifier: Identifier, tmp_path: Path) -> None:
    # Legacy torch files are pickles too; only the magic number makes them pytorch-legacy.
    path = tmp_path / "model.pkl"
    builders.pickle_protocol_2(path)

    result = identifier.identify_path(str(path))

    assert result is not None and result.format == "pickle"


def test_identify_path_accepts_bytes_paths_that_are_not_utf8(identifier: Identifier, tmp_path: Path) -> None:
    path = tmp_path / "tmp.safetensors"
    builders.safetensors_file(path)
    odd_name = bytes(tmp_path) + b"/model-\xff.safetensors"
    path.rename(odd_name.decode("utf-8", errors="surrogateescape"))

    result = identifier.identify_path(odd_name)

    assert result is not None and result.format == "safetensors"
