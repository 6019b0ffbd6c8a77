"""Where each tensor lies in a model file, from its header alone: the plan for the tensor fingerprints.

One parser per container family; each reads only headers (the safetensors JSON, the GGUF tensor infos, a
torch zip's data.pkl and local headers, .npy headers, an ONNX graph's initializer fields) with bounded
reads, and returns the float tensors it can locate. Anything malformed gives fewer spans, never an
exception: a layout is a sampling plan, not a verdict (the identify checks decide what a file is).

Each parser has a memory ceiling (its module docstring; docs/design.md "Memory budget per file"). A header
over it raises budget.OverBudget, which plan_tensors turns into a TensorPlan with the reason in `skipped`:
the file is still hashed, and the reason goes into its details.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from weightwarden.agent.fingerprint.layouts import gguf_layout, npy_layout, onnx_layout, safetensors_layout, zip_layout
from weightwarden.agent.fingerprint.layouts.budget import OverBudget
from weightwarden.agent.fingerprint.tensors import TensorPlan, TensorSpan
from weightwarden.agent.identify.protobuf_walk import ProtobufError
from weightwarden.agent.identify.zip_directory import ZipError

Layout = Callable[[int, int], list[TensorSpan]]

LAYOUTS: dict[str, Layout] = {
    "safetensors": lambda fd, size: list(safetensors_layout.plan(fd, size).spans),
    "gguf": gguf_layout.spans,
    "pytorch-zip": zip_layout.torch_spans,
    "torchscript": zip_layout.torch_spans,  # the same archive: data.pkl names the storages under data/
    "numpy-npz": zip_layout.npz_spans,
    "numpy-npy": npy_layout.spans,
    "onnx": onnx_layout.spans,
}


def tensor_spans(fd: int, size: int, format_id: str) -> list[TensorSpan]:
    """The float tensors of the open file `fd` (`size` bytes) of format `format_id`; [] when unknown."""
    return list(plan_tensors(fd, size, format_id).spans)


def plan_tensors(fd: int, size: int, format_id: str) -> TensorPlan:
    """The float tensors of the open file, or why they were skipped (a header over its memory budget)."""
    layout = LAYOUTS.get(format_id)
    if layout is None:
        return TensorPlan()
    try:
        if format_id == "safetensors":
            return safetensors_layout.plan(fd, size)  # carries its own skip reason
        return TensorPlan(tuple(layout(fd, size)))
    except OverBudget as error:
        return TensorPlan(skipped=str(error))
    # What a malformed header can make the parsers raise: struct and zip errors, bad literals (ast),
    # bad JSON or UTF-8 (ValueError), lying counts (MemoryError, OverflowError), deep nesting.
    except (OSError, ValueError, OverflowError, MemoryError, RecursionError, SyntaxError, TypeError,
            struct.error, ZipError, ProtobufError):
        return TensorPlan()


__all__ = ["LAYOUTS", "plan_tensors", "tensor_spans"]
