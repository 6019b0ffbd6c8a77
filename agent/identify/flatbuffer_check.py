"""Structural check for FlatBuffer model files (TFLite "TFL3", ExecuTorch "ET12").

A FlatBuffer starts with a u32 offset to its root table; the table starts with an i32 back-offset to its
vtable, which holds u16 vtable size (>= 4, even) and u16 table size. All of it must lie inside the file:
random bytes that happen to carry the identifier fail these relations.
"""

from __future__ import annotations

import struct
from typing import Any

from weightwarden.agent.safe_open import read_at

IDENTIFIERS = {b"TFL3": "tflite", b"ET12": "executorch"}
MAX_VTABLE_BYTES = 4096


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if len(head) < 16:
        return None
    format_id = IDENTIFIERS.get(head[4:8])
    if format_id is None:
        return None
    (root,) = struct.unpack_from("<I", head, 0)
    if root < 8 or root + 4 > size or root % 4:
        return None
    table = head[root:root + 4] if root + 4 <= len(head) else read_at(fd, root, 4)
    if len(table) != 4:
        return None
    (back,) = struct.unpack("<i", table)
    vtable = root - back
    if vtable < 8 or vtable + 4 > size:
        return None
    header = head[vtable:vtable + 4] if vtable + 4 <= len(head) else read_at(fd, vtable, 4)
    if len(header) != 4:
        return None
    vtable_size, table_size = struct.unpack("<HH", header)
    if vtable_size < 4 or vtable_size % 2 or vtable_size > MAX_VTABLE_BYTES or table_size < 4:
        return None
    if vtable + vtable_size > size or root + table_size > size:
        return None
    details: dict[str, Any] = {"format": format_id, "root_table": root, "fields": (vtable_size - 4) // 2}
    if format_id == "executorch":
        details["extended_header"] = head[8:12] == b"eh00"
    return details
