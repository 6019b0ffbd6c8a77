"""Structural check for CoreML .mlmodel: a protobuf Model with specificationVersion (field 1), a
description (field 2) and its model in one of the type fields numbered 200 and up. ONNX files have no
such field (and have a graph in field 7), so the two are told apart here and in the onnx check.
The Manifest.json of an .mlpackage directory is checked by mlpackage_check."""

from __future__ import annotations

from typing import Any

from weightwarden.agent.identify import mlpackage_check

FIRST_TYPE_FIELD = 200
LAST_TYPE_FIELD = 1000
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if head.lstrip()[:1] == b"{":
        return mlpackage_check.check(fd, size, head, tail)  # an .mlpackage's Manifest.json
    position, version = 0, None
    fields: list[int] = []
    try:
        while position < len(head):
            key, position = _varint(head, position)
            field, wire_type = key >> 3, key & 7
            if not fields and (field, wire_type) != (1, _VARINT):
                return None
            if field == 0:
                return None
            fields.append(field)
            if wire_type == _VARINT:
                value, position = _varint(head, position)
                if field == 1:
                    version = value
            elif wire_type == _LENGTH:
                length, position = _varint(head, position)
                if position + length > size:
                    return None
                position += length
            elif wire_type in (_FIXED64, _FIXED32):
                position += 8 if wire_type == _FIXED64 else 4
            else:
                return None
            if FIRST_TYPE_FIELD <= field <= LAST_TYPE_FIELD:
                break
    except IndexError:
        pass  # a varint cut by the window's end: judge what we walked
    type_fields = [f for f in fields if FIRST_TYPE_FIELD <= f <= LAST_TYPE_FIELD]
    if not version or 2 not in fields or not type_fields or 7 in fields or position > size:
        return None
    return {"specification_version": version, "model_type_field": type_fields[0]}


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(10):
        byte = data[position + index]  # IndexError past the window
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position + index + 1
        shift += 7
    raise IndexError("varint longer than 10 bytes")
