"""Structural check for GGUF (llama.cpp): header counts and a bounded walk of the key/value section.

Layout (docs/gguf.md): "GGUF", u32 version, u64 tensor_count, u64 kv_count (u32 counts and lengths in
version 1), then kv_count entries of (string key, u32 value type, value). Strings are a length and UTF-8
bytes. Every length is checked against the file size and a cap before it is used, so a hostile header
costs neither memory nor time.
"""

from __future__ import annotations

import struct
from typing import Any

from weightwarden.agent.identify.details import clip

MAGIC = b"GGUF"
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 16
MAX_STRING_BYTES = 1 << 20
MAX_ARRAY_DEPTH = 4  # arrays may nest; real files use one level
_TYPE_STRING, _TYPE_ARRAY = 8, 9
# Fixed-size value types: u8 i8 u16 i16 u32 i32 f32 bool u64 i64 f64.
_SCALAR_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_INTEGER_TYPES = {0, 1, 2, 3, 4, 5, 10, 11}
# Keys reported in the details, and the name they get there.
_STRING_KEYS = {"general.architecture": "architecture", "general.name": "name", "general.type": "type"}
_SPLIT_KEYS = {"split.no": "no", "split.count": "count", "split.tensors.count": "tensors_count"}


class _Invalid(Exception):
    """Not a valid GGUF file."""


class _WindowEnd(Exception):
    """The walk needs bytes past the window (the file itself is long enough)."""


class _Cursor:
    """Reads fields from the head window; positions are file offsets (the window starts at 0)."""

    def __init__(self, data: bytes, size: int, order: str, version: int) -> None:
        self.data, self.size, self.order, self.pos = data, size, order, 8
        self.length_code = "I" if version == 1 else "Q"
        self.length_struct = struct.Struct(order + self.length_code)

    def unpack(self, code: str) -> Any:
        width = struct.calcsize(code)
        self.need(width)
        (value,) = struct.unpack_from(self.order + code, self.data, self.pos)
        self.pos += width
        return value

    def skip(self, count: int) -> None:
        self.need(count)
        self.pos += count

    def need(self, count: int) -> None:
        if self.pos + count > self.size:
            raise _Invalid  # claims more bytes than the file has
        if self.pos + count > len(self.data):
            raise _WindowEnd

    def length(self) -> int:
        return int(self.unpack(self.length_code))

    def string(self) -> str:
        length = self.length()
        if length > MAX_STRING_BYTES:
            raise _Invalid
        self.need(length)
        start, self.pos = self.pos, self.pos + length
        return self.data[start:self.pos].decode("utf-8", errors="replace")


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if len(head) < 16 or head[:4] != MAGIC:
        return None
    order = _byte_order(head)
    if order is None:
        return None
    version = struct.unpack_from(order + "I", head, 4)[0]
    cursor = _Cursor(head, size, order, version)
    try:
        tensor_count, kv_count = cursor.length(), cursor.length()
    except (_Invalid, _WindowEnd):
        return None
    if tensor_count > MAX_TENSORS or kv_count > MAX_KV:
        return None
    details: dict[str, Any] = {
        "version": version,
        "byte_order": "little" if order == "<" else "big",
        "tensor_count": tensor_count,
        "kv_count": kv_count,
        "kv_truncated": False,
        "architecture": None,
        "name": None,
        "type": None,
    }
    split: dict[str, int] = {}
    try:
        for _ in range(kv_count):
            _read_entry(cursor, details, split)
    except _Invalid:
        return None
    except _WindowEnd:
        # A huge vocabulary can push the KV section past the window; the header alone still holds.
        details["kv_truncated"] = True
    if split:
        details["split"] = split
    return details


def _byte_order(head: bytes) -> str | None:
    """'<' or '>': big-endian files keep the magic as is but store the version byte-swapped."""
    for order in "<>":
        if 1 <= struct.unpack_from(order + "I", head, 4)[0] <= 3:
            return order
    return None


def _read_entry(cursor: _Cursor, details: dict[str, Any], split: dict[str, int]) -> None:
    key = cursor.string()
    value_type = cursor.unpack("I")
    if key in _STRING_KEYS and value_type == _TYPE_STRING:
        details[_STRING_KEYS[key]] = clip(cursor.string())
    elif key in _SPLIT_KEYS and value_type in _INTEGER_TYPES:
        split[_SPLIT_KEYS[key]] = int(cursor.unpack(_SCALAR_CODES[value_type]))
    else:
        _skip_value(cursor, value_type, depth=0)


def _skip_value(cursor: _Cursor, value_type: int, depth: int) -> None:
    if value_type in _SCALAR_CODES:
        cursor.skip(struct.calcsize(_SCALAR_CODES[value_type]))
    elif value_type == _TYPE_STRING:
        length = cursor.length()
        if length > MAX_STRING_BYTES:
            raise _Invalid
        cursor.skip(length)
    elif value_type == _TYPE_ARRAY and depth < MAX_ARRAY_DEPTH:
        _skip_array(cursor, depth)
    else:
        raise _Invalid


def _skip_array(cursor: _Cursor, depth: int) -> None:
    item_type = cursor.unpack("I")
    count = cursor.length()
    if item_type in _SCALAR_CODES:
        cursor.skip(count * struct.calcsize(_SCALAR_CODES[item_type]))
        return
    # Variable-size items take at least a length (or type + count) each: a count the rest of the file
    # cannot hold is a lie, rejected before looping.
    if count * 8 > cursor.size - cursor.pos:
        raise _Invalid
    if item_type == _TYPE_STRING:
        _skip_strings(cursor, count)
        return
    # Each item consumes window bytes or ends the walk, so this loop is bounded by the window.
    for _ in range(count):
        _skip_value(cursor, item_type, depth + 1)


def _skip_strings(cursor: _Cursor, count: int) -> None:
    """Skip `count` strings. A tight loop: tokenizer vocabularies hold 100k+ strings and fill the window."""
    data, position = cursor.data, cursor.pos
    unpack_length, width = cursor.length_struct.unpack_from, cursor.length_struct.size
    window_end = len(data)
    for _ in range(count):
        if position + width > window_end:
            cursor.pos = position
            cursor.need(width)  # raises: past the file (invalid) or past the window
        (length,) = unpack_length(data, position)
        if length > MAX_STRING_BYTES:
            raise _Invalid
        position += width + length
        if position > window_end:
            cursor.pos = position - length
            cursor.need(length)  # raises likewise
    cursor.pos = position
