"""Structural check for compressed joblib dumps: inflate a bounded prefix, then walk it as a pickle.

Output is capped (a decompression bomb costs at most MAX_OUTPUT bytes) and only the window is fed in.
The pickle inside must hold arrays or ML objects, like any pickle we report.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Any

from weightwarden.agent.identify.pickle_check import ML_MODULES, walk_pickle

MAX_OUTPUT = 1 << 20


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    inflated = _inflate(head)
    if inflated is None:
        return None
    compression, data, finished = inflated
    # A finished stream is the whole pickle; otherwise the walk may run out of data like a window does.
    details = walk_pickle(data, len(data) if finished else len(data) + 1)
    if details is None:
        return None
    modules = {name.split(".", 1)[0] for name in details["uses_globals"]}
    if not modules & ML_MODULES:
        return None
    details["compression"] = compression
    return details


def _inflate(head: bytes) -> tuple[str, bytes, bool] | None:
    try:
        if head[:1] == b"\x78":
            decompressor: Any = zlib.decompressobj()
            name = "zlib"
        elif head[:2] == b"\x1f\x8b":
            decompressor, name = zlib.decompressobj(wbits=31), "gzip"
        elif head[:3] == b"BZh":
            decompressor, name = bz2.BZ2Decompressor(), "bz2"
        elif head[:4] == b"\xfd7zX":
            decompressor, name = lzma.LZMADecompressor(), "xz"
        else:
            return None
        data = decompressor.decompress(head, MAX_OUTPUT)
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
        return None
    finished = bool(getattr(decompressor, "eof", False))
    return name, data, finished
