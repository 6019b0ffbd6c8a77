"""Which structural check confirms each candidate format.

A check takes (fd, size, head, tail) and returns JSON-serialisable details when the file has the
structure of its family, or None to reject the candidate. Several formats can share one family check (the
zip check decides between pytorch-zip, torchscript and numpy-npz); such a check names the format it found
in details["format"], and runs once per file however many of its formats are candidates. A check that
parses the tensor layout anyway (safetensors) hands it on in details[PLAN_KEY] (a TensorPlan, taken out
before the details are reported), so the header is parsed once. A check whose file is over its memory
budget raises OverBudget (fingerprint/layouts/budget.py) instead of parsing it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from weightwarden.agent.identify import (
    compressed_check,
    coreml_check,
    flatbuffer_check,
    flax_msgpack_check,
    ggml_check,
    gguf_check,
    hdf5_check,
    npy_check,
    onnx_check,
    openvino_check,
    paddle_check,
    pickle_check,
    safetensors_check,
    sealed_check,
    siblings,
    tar_check,
    tf_savedmodel_check,
    zip_check,
)
from weightwarden.agent.identify.safetensors_check import PLAN_KEY as PLAN_KEY

Check = Callable[[int, int, bytes, bytes], dict[str, Any] | None]

CHECKS: Mapping[str, Check] = {
    "safetensors": safetensors_check.check,
    "gguf": gguf_check.check,
    "pytorch-zip": zip_check.check,
    "torchscript": zip_check.check,
    "numpy-npz": zip_check.check,
    "pytorch-legacy": pickle_check.check_pytorch_legacy,
    "numpy-npy": npy_check.check,
    "onnx": onnx_check.check,
    "pickle": pickle_check.check,
    "ggml": ggml_check.check,
    "tflite": flatbuffer_check.check,
    "executorch": flatbuffer_check.check,
    "keras-v3": zip_check.check,
    "keras-h5": hdf5_check.check,
    "coreml": coreml_check.check,
    "openvino-ir": openvino_check.check,
    "nemo": tar_check.check,
    "joblib": compressed_check.check,
    "tf-savedmodel": tf_savedmodel_check.check,
    "flax-msgpack": flax_msgpack_check.check,
    "paddle": paddle_check.check,
    "sealed": sealed_check.check,
}

# Formats whose content is shared with look-alikes (a tensor bundle index ends like any LevelDB table) or
# that stand for a directory (an .mlpackage's manifest): after the content check, the files beside decide.
# A confirmation takes (path or None when unknown, details) and returns the details to report, or None.
SiblingConfirmation = Callable[[str | None, dict[str, Any]], dict[str, Any] | None]
SIBLING_CONFIRMATIONS: Mapping[str, SiblingConfirmation] = {
    "tf-savedmodel": siblings.confirm_tensor_bundle,
    "coreml": siblings.confirm_mlpackage,
}
