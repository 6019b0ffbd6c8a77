"""Structural check for ONNX: walk the top-level protobuf fields of the ModelProto in the window.

ONNX has no magic. A ModelProto (onnx.in.proto) starts with ir_version (field 1, varint) and carries the
graph in field 7; protobuf writers emit fields in number order, so the graph comes before opset_import
(field 8) and before any large trailing data. CoreML .mlmodel files start the same way (specification
version, description) but have no field 7 and put the model in fields numbered 200 and up.
"""

from __future__ import annotations

from typing import Any

from weightwarden.agent.identify.details import clip

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_IR_VERSION, _PRODUCER_NAME, _PRODUCER_VERSION, _DOMAIN, _MODEL_VERSION, _GRAPH, _OPSET = 1, 2, 3, 4, 5, 7, 8
_STRING_FIELDS = {_PRODUCER_NAME: "producer_name", _PRODUCER_VERSION: "producer_version", _DOMAIN: "domain"}
_FIRST_FOREIGN_FIELD = 200  # CoreML's model type fields
_MAX_VARINT_BYTES = 10
_MAX_OPSETS = 16


class _Invalid(Exception):
    pass


class _WindowEnd(Exception):
    """A varint is cut by the end of the data we have."""


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    details: dict[str, Any] = {"ir_version": None, "producer_name": None, "producer_version": None,
                               "domain": None, "model_version": None, "graph_bytes": None}
    opsets: list[dict[str, Any]] = []
    position, first = 0, True
    try:
        # Walk while the next tag is inside the window; large fields (the graph) may end past it.
        while position < len(head):
            field, wire_type, position = _tag(head, position)
            if first and (field, wire_type) != (_IR_VERSION, _VARINT):
                return None
            first = False
            if field >= _FIRST_FOREIGN_FIELD:
                return None
            if wire_type == _VARINT:
                value, position = _varint(head, position)
                if field == _IR_VERSION:
                    details["ir_version"] = value
                elif field == _MODEL_VERSION:
                    details["model_version"] = value
            elif wire_type == _LENGTH:
                length, position = _varint(head, position)
                end = position + length
                if end > size:
                    raise _Invalid  # a field longer than the file
                if field in _STRING_FIELDS and end <= len(head):
                    details[_STRING_FIELDS[field]] = _text(head[position:end])
                elif field == _GRAPH:
                    details["graph_bytes"] = length
                elif field == _OPSET and end <= len(head) and len(opsets) < _MAX_OPSETS:
                    opsets.append(_opset(head[position:end]))
                position = end
            elif wire_type in (_FIXED64, _FIXED32):
                position += 8 if wire_type == _FIXED64 else 4
            else:
                return None  # groups (3, 4) and invalid wire types do not occur in ONNX
        if position > size:
            return None
    except _WindowEnd:
        if len(head) >= size:
            return None  # the file itself ends inside a field
    except _Invalid:
        return None
    if details["graph_bytes"] is None or not details["ir_version"]:
        return None
    details["opset_import"] = opsets
    return details


def _tag(data: bytes, position: int) -> tuple[int, int, int]:
    key, position = _varint(data, position)
    field, wire_type = key >> 3, key & 7
    if field == 0:
        raise _Invalid
    return field, wire_type, position


def _varint(data: bytes, position: int) -> tuple[int, int]:
    """Decode a protobuf varint; longer than 10 bytes is invalid."""
    value = shift = 0
    for index in range(_MAX_VARINT_BYTES):
        if position + index >= len(data):
            raise _WindowEnd
        byte = data[position + index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position + index + 1
        shift += 7
    raise _Invalid


def _opset(message: bytes) -> dict[str, Any]:
    try:
        return _parse_opset(message)
    except _WindowEnd:
        raise _Invalid from None  # the message is complete, so a cut varint is malformed


def _parse_opset(message: bytes) -> dict[str, Any]:
    """OperatorSetIdProto: domain (field 1, string), version (field 2, varint)."""
    opset: dict[str, Any] = {"domain": "", "version": None}
    position = 0
    while position < len(message):
        field, wire_type, position = _tag(message, position)
        if wire_type == _VARINT:
            value, position = _varint(message, position)
            if field == 2:
                opset["version"] = value
        elif wire_type == _LENGTH:
            length, position = _varint(message, position)
            if field == 1:
                opset["domain"] = _text(message[position:position + length])
            position += length
        else:
            raise _Invalid
    return opset


def _text(raw: bytes) -> str:
    return clip(raw.decode("utf-8", errors="replace"))
