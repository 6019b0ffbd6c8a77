"""ONNX: the initializers of the graph (ModelProto.graph = field 7, GraphProto.initializer = field 5), each a
TensorProto whose values are inline, in raw_data (field 9) or packed float_data (field 4).

ONNX has no index: the graph is walked field by field through a 1 MiB read buffer, skipping every payload
it does not need (nodes, raw data) by its declared length, so a multi-gigabyte model costs one small read
per initializer, not a read of its weights. Initializers stored as external data (data_location = 1, the
weights in a side file, what torch.onnx.export writes by default) belong to that file's plan:
`external_spans` reads them from the model file for the data file being hashed (offset and length from
their external_data entries).

Memory ceiling: one record per initializer, at most MAX_TENSORS (131,072) with names of at most
MAX_NAME_BYTES; MAX_FIELDS graph fields walked (a graph of a million tiny nodes is over budget, reported).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from weightwarden.agent.fingerprint import encodings
from weightwarden.agent.fingerprint.layouts.budget import OverBudget
from weightwarden.agent.fingerprint.tensors import TensorSpan
from weightwarden.agent.identify.protobuf_walk import FIXED32, FIXED64, LENGTH, VARINT, ProtobufError, Truncated, fields
from weightwarden.agent.safe_open import read_at

CHUNK = 1 << 20
MAX_TENSORS = 1 << 17
MAX_FIELDS = 4_000_000
MAX_NAME_BYTES = 1024
MAX_DIMS = 8
MAX_TENSOR_HEADER = 1 << 16  # a TensorProto's fields before its data: dims, type, name
_GRAPH, _INITIALIZER = 7, 5
_DIMS, _DATA_TYPE, _FLOAT_DATA, _NAME, _RAW_DATA, _EXTERNAL_DATA, _DATA_LOCATION = 1, 2, 4, 8, 9, 13, 14
_EXTERNAL = 1
MAX_ENTRY_BYTES = 4096
# TensorProto.DataType -> (item size, encoding) of the types we sample; ONNX data is little-endian.
SAMPLED = {1: (4, "<f4"), 10: (2, "<f2"), 11: (8, "<f8"), 16: (2, encodings.BF16_LE), 3: (1, encodings.INT8),
           17: (1, encodings.F8_E4M3), 19: (1, encodings.F8_E5M2)}


class _Stream:
    """Protobuf tags and varints read from the file through a buffer; payloads are skipped, not read."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.buffer, self.buffer_start = b"", 0
        self.fields = 0

    def byte(self, position: int) -> int:
        if not self.buffer_start <= position < self.buffer_start + len(self.buffer):
            if position >= self.size:
                raise ProtobufError("message runs past the end of the file")
            self.buffer, self.buffer_start = read_at(self.fd, position, CHUNK), position
            if not self.buffer:
                raise ProtobufError("file shrank")
        return self.buffer[position - self.buffer_start]

    def varint(self, position: int) -> tuple[int, int]:
        value = shift = 0
        for index in range(10):
            byte = self.byte(position + index)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value, position + index + 1
            shift += 7
        raise ProtobufError("varint longer than 10 bytes")

    def field(self, position: int, end: int) -> tuple[int, int, int, int]:
        """(number, wire type, value or payload length, payload start) of the field at `position`."""
        self.fields += 1
        if self.fields > MAX_FIELDS:
            raise OverBudget(f"ONNX graph too large to walk: more than {MAX_FIELDS:,} fields")
        key, position = self.varint(position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire == VARINT:
            value, after = self.varint(position)
            return number, wire, value, after
        if wire == LENGTH:
            length, start = self.varint(position)
            if start + length > end:
                raise ProtobufError("field longer than its message")
            return number, wire, length, start
        if wire in (FIXED32, FIXED64):
            return number, wire, 4 if wire == FIXED32 else 8, position
        raise ProtobufError(f"wire type {wire}")

    def read(self, start: int, length: int) -> bytes:
        data = read_at(self.fd, start, length)
        if len(data) != length:
            raise ProtobufError("file shrank")
        return data


def spans(fd: int, size: int) -> list[TensorSpan]:
    """The initializers whose data is in the model file itself."""
    return _spans(fd, size, None)


def external_spans(fd: int, size: int, location: str) -> list[TensorSpan]:
    """The initializers the model file (fd) keeps in its external data file `location` (relative to the
    model's folder, normalised), with offsets into that file."""
    return _spans(fd, size, location)


def _spans(fd: int, size: int, location: str | None) -> list[TensorSpan]:
    stream = _Stream(fd, size)
    found: list[TensorSpan] = []
    for number, wire, length, start in _walk(stream, 0, size):
        if number == _GRAPH and wire == LENGTH:
            for inner, inner_wire, inner_length, inner_start in _walk(stream, start, start + length):
                if inner == _INITIALIZER and inner_wire == LENGTH:
                    if len(found) >= MAX_TENSORS:
                        raise OverBudget(f"ONNX graph too large: more than {MAX_TENSORS:,} initializers")
                    span = _initializer(stream, inner_start, inner_start + inner_length, location)
                    if span is not None:
                        found.append(span)
            break
    return found


def _walk(stream: _Stream, position: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(number, wire type, value or length, payload start) of each field of the message at [position, end)."""
    while position < end:
        number, wire, value, start = stream.field(position, end)
        yield number, wire, value, start
        position = start + value if wire in (LENGTH, FIXED32, FIXED64) else start


def _initializer(stream: _Stream, start: int, end: int, wanted: str | None) -> TensorSpan | None:
    """The span of one TensorProto: inline data when `wanted` is None, else data in external file `wanted`."""
    dims: list[int] = []
    data_type, name, data, location = 0, "", None, 0
    external: dict[str, str] = {}
    for number, wire, value, payload in _walk(stream, start, end):
        if number == _DIMS:
            if wire == VARINT:
                dims.append(value)
            elif wire == LENGTH and value <= 10 * MAX_DIMS:
                dims.extend(_packed_varints(stream.read(payload, value)))
        elif number == _DATA_TYPE and wire == VARINT:
            data_type = value
        elif number == _NAME and wire == LENGTH:
            name = stream.read(payload, min(value, MAX_NAME_BYTES)).decode("utf-8", errors="replace")
        elif number in (_RAW_DATA, _FLOAT_DATA) and wire == LENGTH:
            data = (payload, value, number)
        elif number == _EXTERNAL_DATA and wire == LENGTH and value <= MAX_ENTRY_BYTES and len(external) < 8:
            key, text = _entry(stream.read(payload, value))
            external[key] = text
        elif number == _DATA_LOCATION and wire == VARINT:
            location = value
        if payload - start > MAX_TENSOR_HEADER and data is None:
            return None  # megabytes of something before the data: not a tensor we read
    sampled = SAMPLED.get(data_type)
    if sampled is None or len(dims) > MAX_DIMS:
        return None
    itemsize, encoding = sampled
    if wanted is None:
        if data is None or location == _EXTERNAL:
            return None
        offset, length, kind = data
        if kind == _FLOAT_DATA and data_type != 1:
            return None  # float_data holds FLOAT values only (other types use int32_data or raw_data)
    else:
        if location != _EXTERNAL or posixpath.normpath(external.get("location", "")) != wanted:
            return None
        try:
            offset = int(external.get("offset", "0"))
            length = int(external["length"]) if "length" in external else -1
        except ValueError:
            return None
    span = TensorSpan(name, tuple(dims), offset, itemsize, itemsize - 1, encoding)
    return span if offset >= 0 and length in (span.nbytes, -1) else None


def _entry(message: bytes) -> tuple[str, str]:
    """(key, value) of a StringStringEntryProto (fields 1 and 2)."""
    found = {1: "", 2: ""}
    try:
        for field in fields(message):
            if field.number in found and field.wire_type == LENGTH:
                found[field.number] = field.text(message, MAX_ENTRY_BYTES)
    except (ProtobufError, Truncated):
        return "", ""
    return found[1], found[2]


def _packed_varints(data: bytes) -> list[int]:
    values: list[int] = []
    position = 0
    while position < len(data) and len(values) <= MAX_DIMS:
        value = shift = 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80 or position >= len(data):
                break
        values.append(value)
    return values
