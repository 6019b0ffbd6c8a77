"""A bounded walk over protobuf wire format, for the checks of formats that are protobuf messages with no
magic (SavedModel, Paddle ProgramDesc, ONNX external-data entries).

Nothing is decoded beyond field tags, varints and the (start, end) of length-delimited fields, so a lying
length costs nothing: it is compared with the data we hold and the file size, never allocated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
MAX_VARINT_BYTES = 10


class ProtobufError(Exception):
    """Bytes that cannot be protobuf: a zero field number, a group or unknown wire type, an endless varint."""


class Truncated(Exception):
    """The data we hold ends inside a field: fine for a window of a larger file, malformed for a whole one."""


@dataclass(frozen=True, slots=True)
class Field:
    number: int
    wire_type: int
    value: int  # varints and fixed values; for LENGTH fields the declared length
    start: int  # LENGTH fields: where the payload starts in the data
    end: int  # LENGTH fields: where it ends (may lie past the data held)

    def payload(self, data: bytes) -> bytes:
        """The field's bytes; raises Truncated when they run past the data held."""
        if self.end > len(data):
            raise Truncated
        return data[self.start:self.end]

    def text(self, data: bytes, limit: int = 512) -> str:
        return self.payload(data)[:limit].decode("utf-8", errors="replace")


def varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(MAX_VARINT_BYTES):
        if position + index >= len(data):
            raise Truncated
        byte = data[position + index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position + index + 1
        shift += 7
    raise ProtobufError("varint longer than 10 bytes")


def fields(data: bytes, start: int = 0, end: int | None = None, *, limit: int | None = None) -> Iterator[Field]:
    """The fields of the message in data[start:end]. `limit` bounds the declared lengths (the message's
    own end or the file size): a length past it is malformed, not truncated."""
    end = len(data) if end is None else min(end, len(data))
    bound = limit if limit is not None else end
    position = start
    while position < end:
        key, position = varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire_type == VARINT:
            value, position = varint(data, position)
            yield Field(number, wire_type, value, position, position)
        elif wire_type == LENGTH:
            length, position = varint(data, position)
            if position + length > bound:
                raise ProtobufError("field longer than its message")
            yield Field(number, wire_type, length, position, position + length)
            position += length
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if position + width > len(data):
                raise Truncated
            yield Field(number, wire_type, int.from_bytes(data[position:position + width], "little"),
                        position, position + width)
            position += width
        else:
            raise ProtobufError(f"wire type {wire_type}")
