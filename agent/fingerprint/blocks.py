"""The similarity block of a tensor: the values of its top-left corner, 32 rows by 32 columns.

Why a corner and not samples spread over the tensor: what exporters and thieves do to a weight matrix keeps
its corner where it is. Extra vocabulary rows are appended, fused q/k/v projections stack their rows after
the first, a transposed copy (an ONNX MatMul initializer) moves the corner onto itself, padding adds rows
or columns at the end. Quantisation, pruning and fine-tuning change values but not positions. Samples at
positions scaled to the tensor's size would all move with any of those.

The matrix view: a 2-D tensor as it is; a GGML quantised tensor as rows of its innermost dimension (its
blocks run along it); a convolution kernel (3-D or more with a short last dimension) as one row per output
channel; any other N-D tensor as its leading dimensions flattened into rows (stacked MoE experts, whose
first expert is the first rows). 1-D tensors (norms, biases) get no block.

Stored form (`TensorPrint.block`): rows, columns (one byte each), a float32 scale, then rows x columns
float16 values divided by the scale (little-endian, row-major). Scaling keeps the tiny weights of some
layers out of float16's subnormal range; float16 keeps the 11 bits of precision a fine-tune's change needs.
"""

from __future__ import annotations

import struct

import numpy as np

from weightwarden.agent.fingerprint import encodings, ggml_blocks

SIDE = 32
_HEADER = struct.Struct("<BBf")


def matrix_shape(shape: tuple[int, ...], encoding: str) -> tuple[int, int] | None:
    """(rows, columns) of the tensor's matrix view, or None for 1-D and empty tensors."""
    if len(shape) < 2 or any(d <= 0 for d in shape):
        return None
    quantised = encodings.ggml_type(encoding) is not None
    if len(shape) > 2 and not quantised and shape[-1] < SIDE:
        columns = 1
        for dim in shape[1:]:
            columns *= dim
        return shape[0], columns
    rows = 1
    for dim in shape[:-1]:
        rows *= dim
    return rows, shape[-1]


def row_ranges(shape: tuple[int, ...], encoding: str, offset: int,
               itemsize: int) -> tuple[int, int, list[tuple[int, int]]]:
    """(rows taken, columns taken, [(file offset, length)] of each row's prefix holding the corner);
    ([] when the tensor has no block or its values cannot be decoded)."""
    view = matrix_shape(shape, encoding)
    if view is None or not encodings.decodable(encoding):
        return 0, 0, []
    rows, columns = view
    taken_rows, taken_columns = min(rows, SIDE), min(columns, SIDE)
    try:
        stride = encodings.row_stride(encoding, columns, itemsize)
    except ValueError:
        return 0, 0, []  # a quantised row that is not whole blocks: the header lies
    length = encodings.prefix_bytes(encoding, taken_columns, itemsize)
    return taken_rows, taken_columns, [(offset + r * stride, length) for r in range(taken_rows)]


def encode_block(encoding: str, rows: int, columns: int, raw: np.ndarray) -> bytes:
    """The stored block from the concatenated row prefixes `raw` (uint8) that row_ranges named."""
    per_row = len(raw) // rows if rows else 0
    # Each row prefix is whole elements (or whole quantised blocks): the rows decode as one run.
    type_id = encodings.ggml_type(encoding)
    if type_id is not None:
        elements, size = ggml_blocks.BLOCKS[type_id]
        row_elements = per_row // size * elements
    else:
        row_elements = columns
    values = encodings.decode(encoding, raw, rows * row_elements).reshape(rows, row_elements)[:, :columns]
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    scale = float(np.abs(values).max()) if values.size else 0.0
    scaled: np.ndarray = (values / scale if scale > 0 else values).astype("<f2")
    return _HEADER.pack(rows, columns, scale) + scaled.tobytes()


def decode_block(data: bytes) -> np.ndarray | None:
    """The float32 corner values of a stored block, or None when `data` is not one."""
    if len(data) < _HEADER.size:
        return None
    rows, columns, scale = _HEADER.unpack_from(data)
    body = data[_HEADER.size:]
    if rows == 0 or columns == 0 or rows > SIDE or columns > SIDE or len(body) != rows * columns * 2:
        return None
    if not np.isfinite(scale) or scale < 0:
        return None
    values = np.frombuffer(body, dtype="<f2").astype(np.float32).reshape(rows, columns)
    return values * np.float32(scale) if scale > 0 else values
