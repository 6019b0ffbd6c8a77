"""Text any destination can take, whatever a record holds: pure functions, no I/O.

A record's text comes from what the agent saw (a model's metadata, a command line, a file name), so it can
hold anything Python's str can: lone surrogates (a JSON `\\udcff` escape in a safetensors header, or a
non-UTF-8 name decoded with surrogateescape), NUL, and the Unicode line breaks U+0085, U+2028 and U+2029.
A lone surrogate cannot be encoded as UTF-8 at all; the line breaks split a line for readers that honour
them (Python's str.splitlines, Java's line readers, old JavaScript), so a name holding one could forge a
second record in a JSON-lines file.

- `well_formed` writes a lone surrogate as the six characters `\\udcff` (as Python's backslashreplace
  does): visible, never dropped, and encodable.
- `json_text` is JSON whose every string is well formed, with U+0085, U+2028 and U+2029 written as JSON
  escapes (lossless: a JSON parser reads back the same character).
The syslog bodies (CEF, LEEF, RFC 5424 structured data) apply `well_formed` and their own escapes.
"""

from __future__ import annotations

import json
import re
from typing import Any

LINE_BREAKS = "\u0085\u2028\u2029"  # line breaks beyond CR and LF that some readers split on
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_UNSAFE = re.compile(f"[\ud800-\udfff{LINE_BREAKS}]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


def well_formed(text: str) -> str:
    """`text` with every lone surrogate written as `\\uXXXX` text: always encodable as UTF-8."""
    if text.isprintable() or _SURROGATE.search(text) is None:  # fast path: surrogates are not printable
        return text
    return _SURROGATE.sub(_escape, text)


def _json_safe(match: re.Match[str]) -> str:
    # Raw in json.dumps' output, these sit inside strings (keys or values): a line break becomes its JSON
    # escape, a lone surrogate the escaped backslash plus uXXXX, i.e. the text well_formed() gives.
    code = ord(match[0])
    return f"\\u{code:04x}" if match[0] in LINE_BREAKS else f"\\\\u{code:04x}"


def json_text(document: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON (UTF-8 text, not ASCII-escaped) that encodes as UTF-8 and holds no line break."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
    if _JSON_UNSAFE.search(text) is None:
        return text
    return _JSON_UNSAFE.sub(_json_safe, text)


def json_bytes(document: Any, *, sort_keys: bool = False) -> bytes:
    return json_text(document, sort_keys=sort_keys).encode("utf-8")
