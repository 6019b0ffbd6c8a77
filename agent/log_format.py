"""The agent's log lines: one record is one line, whatever text it carries.

Log messages quote what the agent saw: file names, command lines, a model's metadata, a receiver's error.
A file named `x\\n2026-01-01 00:00:00,000 WARNING ...` would otherwise write a forged line into the log
(and, under systemd, a forged journal entry: journald splits stderr at newlines), and a terminal escape
sequence would repaint the terminal of whoever reads it. So the message's control characters (C0, DEL,
C1), the Unicode line breaks U+2028/U+2029 and lone surrogates are written as `\\xNN` / `\\uNNNN` escapes,
as events.display_path writes a path. A traceback keeps its lines (it is ours, and needed for debugging)
but each of them is indented and escaped the same way, so none can pass for a record of its own.
"""

from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNSAFE_IN_LINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")  # all but LF


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` on one line: control characters, line breaks and lone surrogates as escapes."""
    if text.isprintable():  # fast path: none of those is printable
        return text
    return _UNSAFE.sub(_escape, text)


class EscapingFormatter(logging.Formatter):
    """A Formatter whose every record is one line, its traceback (if any) indented below it."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("  " + _UNSAFE_IN_LINE.sub(_escape, line) for line in text.split("\n"))


def configure(level: int) -> None:
    """The root logger writes escaped lines to stderr (what `weightwarden` and the agent's unit log)."""
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
