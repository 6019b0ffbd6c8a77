"""Structural check for Flax checkpoints (flax.serialization.to_bytes / msgpack_serialize).

Flax writes one msgpack map (the state dict) whose leaves are arrays as msgpack ext values of type 1,
each holding a packed (shape, dtype name, raw bytes) triple; numpy scalars are ext type 3 (dtype name,
bytes), complex numbers ext type 2; arrays over 2**30 bytes become maps marked `__msgpack_chunked_array__`.
msgpack has no magic, so a file is confirmed only when the walk of its window finds at least one such
array whose byte length matches its shape and dtype (or the chunked-array marker). A msgpack file of
plain data (maps, strings, numbers) is rejected.

The walk keeps an explicit stack (no recursion), reads only headers and skips payloads by length, and
stops at the window's end or after MAX_ITEMS values, so lying counts cost nothing.
"""

from __future__ import annotations

import struct
from typing import Any

from weightwarden.agent.identify.details import clip

CHUNKED_MARKER = b"__msgpack_chunked_array__"
EXT_NDARRAY, EXT_COMPLEX, EXT_NPSCALAR = 1, 2, 3
MAX_ITEMS = 200_000
MAX_DEPTH = 64
MAX_DIMENSIONS = 32
MAX_LISTED_DTYPES = 16
ITEMSIZES = {
    "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "float16": 2, "bfloat16": 2, "int32": 4,
    "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8, "complex64": 8, "complex128": 16,
    "float8_e4m3fn": 1, "float8_e5m2": 1, "int4": 1, "uint4": 1,
}
_MAP, _ARRAY, _STR, _BIN, _EXT, _SCALAR = range(6)


class _End(Exception):
    """The data ends inside a value."""


class _Invalid(Exception):
    """A byte that is no msgpack type (0xc1)."""


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if not head or not (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        return None
    walk = _Walk(head)
    try:
        complete = walk.run()
    except _Invalid:
        return None
    except _End:
        complete = False
    if walk.bad_arrays:
        return None
    if complete and len(head) >= size and walk.position != size:
        return None  # the whole file is in the window and is not exactly one msgpack map
    if not complete and len(head) >= size:
        return None  # truncated
    if walk.position > size:
        return None
    if not walk.arrays and not walk.chunked:
        return None  # plain data
    return {"arrays_seen": walk.arrays, "scalars_seen": walk.scalars, "chunked_arrays": walk.chunked,
            "dtypes": sorted(walk.dtypes), "walked_whole_file": complete and len(head) >= size}


class _Walk:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0
        self.arrays = 0
        self.scalars = 0
        self.chunked = 0
        self.bad_arrays = 0
        self.dtypes: set[str] = set()

    def run(self) -> bool:
        """Walk one value from offset 0; True when it ended inside the data, False on the item budget."""
        remaining = [1]
        items = 0
        while remaining:
            if remaining[-1] == 0:
                remaining.pop()
                continue
            remaining[-1] -= 1
            items += 1
            if items > MAX_ITEMS:
                return False
            kind, argument, ext_type = _header(self.data, self.position)
            self.position = argument[1]
            count = argument[0]
            if kind in (_MAP, _ARRAY):
                if len(remaining) >= MAX_DEPTH:
                    raise _Invalid
                remaining.append(count * 2 if kind == _MAP else count)
            elif kind in (_STR, _BIN, _EXT):
                start, self.position = self.position, self.position + count
                if kind == _STR and count == len(CHUNKED_MARKER) and self.data[start:self.position] == CHUNKED_MARKER:
                    self.chunked += 1
                elif kind == _EXT:
                    self._ext(ext_type, start, count)
                if self.position > len(self.data):
                    raise _End
        return True

    def _ext(self, ext_type: int, start: int, length: int) -> None:
        if ext_type not in (EXT_NDARRAY, EXT_NPSCALAR):
            return
        payload = self.data[start:start + length]
        try:
            if ext_type == EXT_NDARRAY:
                dtype = _ndarray(payload, length)
                self.arrays += 1
            else:
                dtype = _npscalar(payload)
                self.scalars += 1
        except _End:
            return  # cut by the window: neither evidence nor disproof
        except (_Invalid, ValueError):
            self.bad_arrays += 1
            return
        if len(self.dtypes) < MAX_LISTED_DTYPES:
            self.dtypes.add(clip(dtype, 32))


def _ndarray(payload: bytes, declared_length: int) -> str:
    """Validate a packed (shape, dtype, bytes) triple; returns the dtype name."""
    kind, (count, position), _ = _header(payload, 0)
    if kind != _ARRAY or count != 3:
        raise _Invalid
    kind, (dimensions, position), _ = _header(payload, position)
    if kind != _ARRAY or dimensions > MAX_DIMENSIONS:
        raise _Invalid
    elements = 1
    for _ in range(dimensions):
        start = position
        kind, (_, position), _ = _header(payload, position)
        if kind != _SCALAR:
            raise _Invalid
        elements *= _unsigned(payload, start, position)
    dtype, position = _string(payload, position)
    kind, (length, position), _ = _header(payload, position)
    if kind != _BIN or position + length != declared_length or length != elements * ITEMSIZES[dtype]:
        raise _Invalid
    return dtype


def _npscalar(payload: bytes) -> str:
    kind, (count, position), _ = _header(payload, 0)
    if kind != _ARRAY or count != 2:
        raise _Invalid
    dtype, position = _string(payload, position)
    kind, (length, position), _ = _header(payload, position)
    if kind != _BIN or length != ITEMSIZES[dtype]:
        raise _Invalid
    return dtype


def _string(payload: bytes, position: int) -> tuple[str, int]:
    kind, (length, start), _ = _header(payload, position)
    if kind != _STR or length > 32:
        raise _Invalid
    if start + length > len(payload):
        raise _End
    name = payload[start:start + length].decode("ascii")  # ValueError for non-ASCII
    if name not in ITEMSIZES:
        raise _Invalid
    return name, start + length


def _unsigned(payload: bytes, start: int, end: int) -> int:
    first = payload[start]
    if first <= 0x7F:
        return first
    if first in (0xCC, 0xCD, 0xCE, 0xCF):
        return int.from_bytes(payload[start + 1:end], "big")
    raise _Invalid  # negative or non-integer dimension


def _header(data: bytes, position: int) -> tuple[int, tuple[int, int], int]:
    """(kind, (count or length, offset after the header), ext type) of the value at `position`.

    For scalars the offset is past the whole value; for str/bin/ext it is where the payload starts.
    """
    if position >= len(data):
        raise _End
    byte = data[position]
    position += 1
    if byte <= 0x7F or byte >= 0xE0 or byte in (0xC0, 0xC2, 0xC3):
        return _SCALAR, (0, position), 0
    if byte <= 0x8F:
        return _MAP, (byte & 0x0F, position), 0
    if byte <= 0x9F:
        return _ARRAY, (byte & 0x0F, position), 0
    if byte <= 0xBF:
        return _STR, (byte & 0x1F, position), 0
    fixed = _FIXED_WIDTH.get(byte)
    if fixed is not None:
        return _SCALAR, (0, _need(data, position + fixed)), 0
    if byte in _SIZED:
        kind, width = _SIZED[byte]
        end = _need(data, position + width)
        length = int.from_bytes(data[position:end], "big")
        if kind == _EXT:
            ext_end = _need(data, end + 1)
            return _EXT, (length, ext_end), struct.unpack("b", data[end:ext_end])[0]
        return kind, (length, end), 0
    if byte in _FIXEXT:
        end = _need(data, position + 1)
        return _EXT, (_FIXEXT[byte], end), struct.unpack("b", data[position:end])[0]
    raise _Invalid  # 0xc1 is never used


def _need(data: bytes, end: int) -> int:
    if end > len(data):
        raise _End
    return end


_FIXED_WIDTH = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
_SIZED = {0xC4: (_BIN, 1), 0xC5: (_BIN, 2), 0xC6: (_BIN, 4), 0xC7: (_EXT, 1), 0xC8: (_EXT, 2), 0xC9: (_EXT, 4),
          0xD9: (_STR, 1), 0xDA: (_STR, 2), 0xDB: (_STR, 4), 0xDC: (_ARRAY, 2), 0xDD: (_ARRAY, 4),
          0xDE: (_MAP, 2), 0xDF: (_MAP, 4)}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
