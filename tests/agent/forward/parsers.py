"""Independent parsers for what receivers wrote: RFC 5424, CEF and LEEF, written from the specs (not from
our renderers), so a round trip through them checks our escaping rather than repeating it."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ")


@dataclass
class Syslog5424:
    pri: int
    timestamp: str
    host: str
    app: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]
    msg: str


def parse_5424(raw: str) -> Syslog5424:
    match = _HEADER.match(raw)
    assert match, f"not RFC 5424: {raw[:80]!r}"
    rest = raw[match.end():]
    sd: dict[str, dict[str, str]] = {}
    if rest.startswith("-"):
        rest = rest[1:]
    while rest.startswith("["):
        end_id = rest.index(" ") if " " in rest[: rest.find("]")] else rest.index("]")
        sd_id = rest[1:end_id]
        params: dict[str, str] = {}
        i = end_id
        while rest[i] != "]":
            assert rest[i] == " "
            eq = rest.index("=", i)
            name = rest[i + 1 : eq]
            assert rest[eq + 1] == '"'
            j, value = eq + 2, []
            while rest[j] != '"':
                if rest[j] == "\\" and rest[j + 1] in '"\\]':
                    value.append(rest[j + 1])
                    j += 2
                else:
                    value.append(rest[j])
                    j += 1
            params[name] = "".join(value)
            i = j + 1
        sd[sd_id] = params
        rest = rest[i + 1 :]
    assert rest.startswith(" ") or rest == ""
    return Syslog5424(int(match[1]), match[2], match[3], match[4], match[5], match[6], sd, rest[1:])


def _split_unescaped(text: str, sep: str, count: int) -> list[str]:
    parts, current, i = [], [], 0
    while i < len(text) and len(parts) < count:
        if text[i] == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
        elif text[i] == sep:
            parts.append("".join(current))
            current = []
            i += 1
        else:
            current.append(text[i])
            i += 1
    parts.append("".join(current) + text[i:])
    return parts


def _unescape_header(value: str) -> str:
    return re.sub(r"\\([\\|])", r"\1", value)


def parse_cef(msg: str) -> tuple[list[str], dict[str, str]]:
    """CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension -> (7 header fields, extension)."""
    fields = _split_unescaped(msg, "|", 7)
    assert len(fields) == 8 and fields[0] == "CEF:0", msg[:120]
    header = [_unescape_header(f) for f in fields[:7]]
    return header, parse_cef_extension(fields[7])


def parse_cef_extension(text: str) -> dict[str, str]:
    # Every unescaped "=" ends a key; the key is the token just before it, the value runs to the next key.
    keys: list[tuple[int, int, str]] = []  # (key start, value start, key)
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "=":
            start = text.rfind(" ", 0, i) + 1
            keys.append((start, i + 1, text[start:i]))
        i += 1
    result = {}
    for index, (_start, value_start, key) in enumerate(keys):
        end = keys[index + 1][0] - 1 if index + 1 < len(keys) else len(text)
        result[key] = _unescape_cef_value(text[value_start:end])
    return result


def _unescape_cef_value(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "r": "\r"}.get(nxt, nxt))
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_leef(msg: str) -> tuple[list[str], dict[str, str]]:
    fields = _split_unescaped(msg, "|", 6)
    assert fields[0] == "LEEF:2.0" and fields[5] == "x09", msg[:120]
    header = [_unescape_header(f) for f in fields[:6]]
    attributes = {}
    for pair in fields[6].split("\t"):
        key, _, value = pair.partition("=")
        attributes[key] = _unescape_leef(value)
    return header, attributes


def _unescape_leef(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)
