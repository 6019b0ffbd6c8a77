"""The external-data files an ONNX model names (onnx docs/ExternalData.md).

A tensor stored outside the model has data_location = EXTERNAL (TensorProto field 14) and key/value entries
(field 13) whose `location` is a path relative to the model's folder. Such tensors are the graph's
initializers (GraphProto field 5), sparse initializers (15: values 1, indices 2) and tensors in node
attributes (NodeProto field 5 -> AttributeProto t = 5, tensors = 10), including those of subgraphs
(AttributeProto g = 6, graphs = 11). The walk visits exactly those fields, with an explicit stack.
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING

from weightwarden.agent.fingerprint.layouts import onnx_layout
from weightwarden.agent.fingerprint.layouts.budget import OverBudget
from weightwarden.agent.fingerprint.tensors import TensorPlan
from weightwarden.agent.identify.protobuf_walk import LENGTH, ProtobufError, Truncated, fields
from weightwarden.agent.safe_open import open_regular

if TYPE_CHECKING:
    from weightwarden.agent.identify.identification import Identification

MAX_LOCATIONS = 100_000
MAX_DEPTH = 32
MAX_MESSAGES = 1_000_000
_GRAPH, _TENSOR, _SPARSE, _NODE, _ATTRIBUTE = range(5)
# (message kind, field number) -> kind of the submessage to visit
_VISIT = {
    (_GRAPH, 1): _NODE, (_GRAPH, 5): _TENSOR, (_GRAPH, 15): _SPARSE,
    (_SPARSE, 1): _TENSOR, (_SPARSE, 2): _TENSOR,
    (_NODE, 5): _ATTRIBUTE,
    (_ATTRIBUTE, 5): _TENSOR, (_ATTRIBUTE, 10): _TENSOR, (_ATTRIBUTE, 6): _GRAPH, (_ATTRIBUTE, 11): _GRAPH,
}
_MODEL_GRAPH = 7
_EXTERNAL_DATA = 13


def external_locations(model: bytes) -> frozenset[str]:
    """Normalised relative paths of the external data files the ModelProto `model` names; empty when it
    names none or is not a well-formed model (never raises for bad bytes)."""
    found: set[str] = set()
    try:
        for field in fields(model):
            if field.number == _MODEL_GRAPH and field.wire_type == LENGTH:
                _walk(model, field.start, field.end, found)
    except (ProtobufError, Truncated):
        return frozenset()
    return frozenset(found)


def _walk(model: bytes, start: int, end: int, found: set[str]) -> None:
    stack = [(_GRAPH, start, end, 0)]
    visited = 0
    while stack:
        kind, start, end, depth = stack.pop()
        visited += 1
        if visited > MAX_MESSAGES or depth > MAX_DEPTH:
            raise ProtobufError("graph too deep or too large")
        for field in fields(model, start, end, limit=end):
            if field.wire_type != LENGTH:
                continue
            if kind == _TENSOR and field.number == _EXTERNAL_DATA:
                location = _location(model, field.start, field.end)
                if location is not None and len(found) < MAX_LOCATIONS:
                    found.add(location)
            child = _VISIT.get((kind, field.number))
            if child is not None:
                stack.append((child, field.start, field.end, depth + 1))


def _location(model: bytes, start: int, end: int) -> str | None:
    """StringStringEntryProto: key (1), value (2); the value of the `location` key, normalised."""
    key = value = None
    for field in fields(model, start, end, limit=end):
        if field.wire_type == LENGTH and field.number in (1, 2):
            text = model[field.start:field.end].decode("utf-8", errors="replace")
            key, value = (text, value) if field.number == 1 else (key, text)
    if key != "location" or not value:
        return None
    normalised = posixpath.normpath(value.replace("\\", "/"))
    if normalised.startswith(("/", "../")) or normalised == "..":
        return None  # onnx refuses locations outside the model's folder
    return normalised


def external_plan(path: str, found: Identification) -> TensorPlan:
    """The tensors of the ONNX external data file at `path` (identified as a companion: details["part_of"]
    names its model file), read from the model file's initializers; empty when that file is unreadable."""
    from weightwarden.agent.identify.companions import primary_path  # companions imports this module

    model = primary_path(path, found)
    if model is None:
        return TensorPlan()
    location = os.path.relpath(path, os.path.dirname(model)).replace(os.sep, "/")
    try:
        fd, info = open_regular(model)
    except OSError:
        return TensorPlan()
    try:
        return TensorPlan(tuple(onnx_layout.external_spans(fd, info.st_size, posixpath.normpath(location))))
    except OverBudget as error:
        return TensorPlan(skipped=str(error))
    except (OSError, ValueError, ProtobufError):
        return TensorPlan()
    finally:
        os.close(fd)
