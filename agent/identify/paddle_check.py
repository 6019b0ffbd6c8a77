"""Structural checks for PaddlePaddle files.

- `.pdmodel` (inference program): a ProgramDesc protobuf (paddle/fluid/framework/framework.proto): blocks
  (field 1) first, and block 0 opens with idx = 0 (field 1) and parent_idx = -1 (field 2, a ten-byte
  varint), then its variables (VarDesc, field 3: name, type) and operators (OpDesc, field 4: type in field 3).
- `.pdparams` (paddle.save of a state dict): a pickle of numpy arrays with the name table under the key
  "StructuredToParameterName@@"; the pickle walk must pass as for any pickle.
- `.json` (Paddle 3 PIR program, what `paddle.jit.save` and `paddle.static.save_inference_model` write by
  default since 3.0; paddle/fluid/pir/serialize_deserialize): a JSON object whose first member is
  "base_code" = {"magic": "pir", "trainable": bool, "version": int}, then "program" = {"regions": [...]};
  each operation is an object whose "#" (its dialect-qualified name, "1.matmul"; "p" for a parameter) is
  followed by "A" (its attributes). Files are often larger than the window, so the JSON is never parsed
  whole: the small base_code object is, and the operations are counted by that pattern in the window.
- `.pdiparams` (the program's parameters, concatenated raw tensors) has no signature: it is identified
  only through its `.pdmodel` or PIR `.json` (companions.py). Its first tensor's header is still read
  (parameters_issue): per tensor u32 version 0, u64 LoD level count with a u64 byte length and the offsets
  per level, u32 tensor version 0, i32 TensorDesc size, the TensorDesc protobuf (data_type in field 1, dims
  in field 2), then the raw data (paddle/fluid/framework/lod_tensor.cc, tensor_util.cc).
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

from weightwarden.agent.identify.details import clip
from weightwarden.agent.identify.pickle_check import walk_pickle
from weightwarden.agent.identify.protobuf_walk import LENGTH, VARINT, Field, ProtobufError, Truncated, fields

PARAMETER_TABLE_KEY = b"StructuredToParameterName@@"
NO_PARENT = (1 << 64) - 1  # int32 -1 as protobuf writes it
MAX_LISTED_OPS = 32
MAX_FIELDS = 100_000

# The PIR program's opening, up to the base_code object, whose members are scalars (no nested braces).
_PIR_OPENING = re.compile(rb'\{\s{0,64}"base_code"\s{0,64}:\s{0,64}(\{[^{}]{0,1024}\})')
_PIR_PROGRAM = re.compile(rb'\s{0,64},\s{0,64}"program"\s{0,64}:\s{0,64}\{\s{0,64}"regions"\s{0,64}:\s{0,64}\[')
_PIR_OPERATION = re.compile(rb'\{\s{0,64}"#"\s{0,64}:\s{0,64}"([^"\\]{1,128})"\s{0,64},\s{0,64}"A"\s{0,64}:')
MAX_PIR_VERSION = 10_000
PARAMETERS_HEAD_BYTES = 4096  # what parameters_issue() needs to see of a .pdiparams
MAX_LOD_LEVELS = 16
MAX_TENSOR_DESC = 1024


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if head[:1] == b"\x80":
        return check_parameters(head, size)
    if head[:1] == b"{":
        return check_pir_program(head)
    return check_program(head, size)


def check_parameters(head: bytes, size: int) -> dict[str, Any] | None:
    details = walk_pickle(head, size)
    if details is None or PARAMETER_TABLE_KEY not in head:
        return None
    if not any(name.startswith("numpy.") for name in details["uses_globals"]):
        return None  # a state dict of arrays; the name table alone is not a model
    return {"role": "state-dict", **details}


def check_program(head: bytes, size: int) -> dict[str, Any] | None:
    try:
        top = fields(head, limit=size)
        block = next(top, None)
        if block is None or (block.number, block.wire_type) != (1, LENGTH):
            return None
        return _block(head, block)
    except ProtobufError:
        return None


def check_pir_program(head: bytes) -> dict[str, Any] | None:
    opening = _PIR_OPENING.match(head)
    if opening is None:
        return None
    try:
        base_code = json.loads(opening[1])
    except ValueError:
        return None
    if not isinstance(base_code, dict) or base_code.get("magic") != "pir":
        return None
    version, trainable = base_code.get("version"), base_code.get("trainable")
    if type(version) is not int or not 0 <= version <= MAX_PIR_VERSION:
        return None
    if _PIR_PROGRAM.match(head, opening.end()) is None:
        return None
    operators = parameters = 0
    op_types: list[str] = []
    for operation in _PIR_OPERATION.finditer(head, opening.end()):
        name = operation[1].decode("utf-8", "replace")
        if name == "p":
            parameters += 1
            continue
        operators += 1
        op_type = clip(name.partition(".")[2] or name, 64)  # "1.matmul": the dialect's number, then the op
        if op_type not in op_types and len(op_types) < MAX_LISTED_OPS:
            op_types.append(op_type)
    return {"role": "program", "representation": "pir", "pir_version": version,
            "trainable": trainable if isinstance(trainable, bool) else None,
            "parameters_seen": parameters, "operators_seen": operators, "op_types": op_types}


def _block(head: bytes, block: Field) -> dict[str, Any] | None:
    index: int | None = None
    parent: int | None = None
    variables = operators = 0
    op_types: list[str] = []
    try:
        for count, field in enumerate(fields(head, block.start, block.end, limit=block.end)):
            if count >= MAX_FIELDS:
                break
            if count == 0 and (field.number, field.wire_type) != (1, VARINT):
                return None
            if count == 1 and (field.number, field.wire_type) != (2, VARINT):
                return None
            if field.number == 1 and field.wire_type == VARINT:
                index = field.value
            elif field.number == 2 and field.wire_type == VARINT:
                parent = field.value
            elif field.number == 3 and field.wire_type == LENGTH:
                if not _has_name_and_type(head, field):
                    return None
                variables += 1
            elif field.number == 4 and field.wire_type == LENGTH:
                operators += 1
                op_type = _op_type(head, field)
                if op_type is not None and len(op_types) < MAX_LISTED_OPS:
                    op_types.append(op_type)
    except Truncated:
        pass  # the block runs past the window: judge what was read
    if index != 0 or parent != NO_PARENT or not variables:
        return None
    return {"role": "program", "variables_seen": variables, "operators_seen": operators, "op_types": op_types}


def _has_name_and_type(head: bytes, variable: Field) -> bool:
    """VarDesc: name (field 1, string) and type (field 2, VarType message) come first."""
    seen = set()
    try:
        for field in fields(head, variable.start, variable.end, limit=variable.end):
            if field.number in (1, 2) and field.wire_type == LENGTH:
                seen.add(field.number)
            if len(seen) == 2:
                return True
    except Truncated:
        return variable.end > len(head)  # cut by the window, not malformed
    return False


def _op_type(head: bytes, operator: Field) -> str | None:
    try:
        for field in fields(head, operator.start, operator.end, limit=operator.end):
            if field.number == 3 and field.wire_type == LENGTH:
                return clip(field.text(head, 64), 64)
    except Truncated:
        return None
    return None


def parameters_issue(head: bytes, size: int) -> str | None:
    """What is wrong with the first tensor header of a .pdiparams whose first bytes are `head` (None: it
    reads as Paddle wrote it). Lengths are compared with the file size and the bytes held, never allocated."""
    try:
        version, lod_levels = struct.unpack_from("<IQ", head)
        if version != 0:
            return f"tensor stream version {version}"
        if lod_levels > MAX_LOD_LEVELS:
            return f"LoD level count {lod_levels}"
        offset = 12
        for _ in range(lod_levels):
            (length,) = struct.unpack_from("<Q", head, offset)
            if length > size:
                return f"LoD level of {length} bytes"
            offset += 8 + length
        tensor_version, desc_size = struct.unpack_from("<Ii", head, offset)
    except struct.error:
        return "the file ends inside the first tensor header" if len(head) >= size else None
    if tensor_version != 0:
        return f"tensor version {tensor_version}"
    if not 0 < desc_size <= MAX_TENSOR_DESC:
        return f"tensor description of {desc_size} bytes"
    start = offset + 8
    if start + desc_size > len(head):
        return "the file ends inside the first tensor header" if len(head) >= size else None
    try:
        described = [(field.number, field.wire_type) for field in fields(head, start, start + desc_size,
                                                                           limit=start + desc_size)]
    except ProtobufError:
        return "tensor description is not a TensorDesc"
    if not described or described[0] != (1, VARINT) or any(wire != VARINT for _, wire in described):
        return "tensor description is not a TensorDesc"
    return None
