"""Where each tensor lies in a model file, from its header alone: the plan for the tensor fingerprints.

One parser per container family; each reads only headers (the safetensors JSON, the GGUF tensor infos, a
torch zip's data.pkl and local headers, .npy headers) with bounded reads, and returns the float tensors it
can locate. Anything malformed gives fewer spans, never an exception: a layout is a sampling plan, not a
verdict (the identify checks decide what a file is).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from weightwarden.agent.fingerprint.layouts import gguf_layout, npy_layout, safetensors_layout, zip_layout
from weightwarden.agent.fingerprint.tensors import TensorSpan
from weightwarden.agent.identify.zip_directory import ZipError

Layout = Callable[[int, int], list[TensorSpan]]

LAYOUTS: dict[str, Layout] = {
    "safetensors": safetensors_layout.spans,
    "gguf": gguf_layout.spans,
    "pytorch-zip": zip_layout.torch_spans,
    "numpy-npz": zip_layout.npz_spans,
    "numpy-npy": npy_layout.spans,
}


def tensor_spans(fd: int, size: int, format_id: str) -> list[TensorSpan]:
    """The float tensors of the open file `fd` (`size` bytes) of format `format_id`; [] when unknown."""
    layout = LAYOUTS.get(format_id)
    if layout is None:
        return []
    try:
        return layout(fd, size)
    # What a malformed header can make the parsers raise: struct and zip errors, bad literals (ast),
    # bad JSON or UTF-8 (ValueError), lying counts (MemoryError, OverflowError), deep nesting.
    except (OSError, ValueError, OverflowError, MemoryError, RecursionError, SyntaxError, TypeError,
            struct.error, ZipError):
        return []


__all__ = ["LAYOUTS", "tensor_spans"]
