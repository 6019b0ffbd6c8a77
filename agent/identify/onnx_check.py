"""Structural check for ONNX: walk the top-level protobuf fields of the ModelProto in the window.

ONNX has no magic. A ModelProto (onnx.in.proto) starts with ir_version (field 1, varint) and carries the
graph in field 7; protobuf writers emit fields in number order, so the graph comes before opset_import
(field 8) and before any large trailing data. CoreML .mlmodel files start the same way (specification
version, description) but have no field 7 and put the model in fields numbered 200 and up.
"""

from __future__ import annotations

from typing import Any

from weightwarden.agent.identify.details import clip
from weightwarden.agent.identify.protobuf_walk import LENGTH, VARINT, Field, ProtobufError, Truncated, fields

_IR_VERSION, _PRODUCER_NAME, _PRODUCER_VERSION, _DOMAIN, _MODEL_VERSION, _GRAPH, _OPSET = 1, 2, 3, 4, 5, 7, 8
_STRING_FIELDS = {_PRODUCER_NAME: "producer_name", _PRODUCER_VERSION: "producer_version", _DOMAIN: "domain"}
_FIRST_FOREIGN_FIELD = 200  # CoreML's model type fields
_MAX_OPSETS = 16


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    details: dict[str, Any] = {"ir_version": None, "producer_name": None, "producer_version": None,
                               "domain": None, "model_version": None, "graph_bytes": None}
    opsets: list[dict[str, Any]] = []
    first = True
    try:
        # Walk while the next tag is inside the window; large fields (the graph) may end past it, never
        # past the file.
        for field in fields(head, limit=size):
            if first and (field.number, field.wire_type) != (_IR_VERSION, VARINT):
                return None
            first = False
            if field.number >= _FIRST_FOREIGN_FIELD:
                return None
            if field.wire_type == VARINT:
                if field.number == _IR_VERSION:
                    details["ir_version"] = field.value
                elif field.number == _MODEL_VERSION:
                    details["model_version"] = field.value
            elif field.wire_type == LENGTH:
                whole = field.end <= len(head)
                if field.number in _STRING_FIELDS and whole:
                    details[_STRING_FIELDS[field.number]] = clip(field.text(head))
                elif field.number == _GRAPH:
                    details["graph_bytes"] = field.value
                elif field.number == _OPSET and whole and len(opsets) < _MAX_OPSETS:
                    opsets.append(_opset(field.payload(head)))
    except Truncated:
        if len(head) >= size:
            return None  # the file itself ends inside a field
    except ProtobufError:
        return None  # includes groups and wire types that do not occur in ONNX
    if details["graph_bytes"] is None or not details["ir_version"]:
        return None
    details["opset_import"] = opsets
    return details


def _opset(message: bytes) -> dict[str, Any]:
    """OperatorSetIdProto: domain (field 1, string), version (field 2, varint). The message is whole, so
    a cut field in it is malformed."""
    opset: dict[str, Any] = {"domain": "", "version": None}
    try:
        for field in fields(message):
            _opset_field(opset, field, message)
    except Truncated:
        raise ProtobufError("opset_import entry cut short") from None
    return opset


def _opset_field(opset: dict[str, Any], field: Field, message: bytes) -> None:
    if field.wire_type == VARINT and field.number == 2:
        opset["version"] = field.value
    elif field.wire_type == LENGTH and field.number == 1:
        opset["domain"] = clip(field.text(message))
    elif field.wire_type not in (VARINT, LENGTH):
        raise ProtobufError(f"wire type {field.wire_type} in an opset_import entry")
