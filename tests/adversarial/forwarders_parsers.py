"""Small strict parsers for what the forwarders send, written from the format specifications and from
docs/forwarding.md, not from agent/forward/: RFC 5424 (with its structured data), CEF, LEEF 2.0, HEC
batches, `_bulk` NDJSON and JSON lines. Each refuses what its spec does not allow (a raw line break, an
escape the format does not define, bytes that are not UTF-8) instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Characters that end a line for some reader: LF, CR, and the Unicode line breaks that Python's
# str.splitlines, Java's line readers or JavaScript honour (VT, FF, FS, GS, RS, NEL, LS, PS).
LINE_ENDS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _printusascii(token: str) -> bool:
    return bool(token) and all(33 <= ord(ch) <= 126 for ch in token)


@dataclass
class SyslogMessage:
    pri: int
    version: str
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: dict[str, dict[str, str]]
    msg: str


def parse_rfc5424(data: bytes) -> SyslogMessage:
    """RFC 5424 section 6: HEADER SP STRUCTURED-DATA [SP MSG], the whole message UTF-8."""
    text = data.decode("utf-8")  # strict: a lone surrogate or a cut character fails here
    assert not LINE_ENDS & set(text), f"a raw line break in a syslog message: {text[:120]!r}"
    assert text.startswith("<") and ">" in text[:5], text[:20]
    close = text.index(">")
    pri = int(text[1:close])
    assert 0 <= pri <= 191 and text[1:close] == str(pri)
    fields = text[close + 1:].split(" ", 6)
    version, timestamp, hostname, app_name, procid, msgid, rest = fields
    assert version == "1"
    for token, limit in ((timestamp, 99), (hostname, 255), (app_name, 48), (procid, 128), (msgid, 32)):
        assert _printusascii(token) and len(token) <= limit, token
    sd, position = _structured_data(rest)
    msg = rest[position:]
    if msg:
        assert msg.startswith(" ")
        msg = msg[1:]
    return SyslogMessage(pri, version, timestamp, hostname, app_name, procid, msgid, sd, msg)


def _structured_data(text: str) -> tuple[dict[str, dict[str, str]], int]:
    if text.startswith("-"):
        return {}, 1
    elements: dict[str, dict[str, str]] = {}
    i = 0
    while i < len(text) and text[i] == "[":
        i += 1
        start = i
        while text[i] not in " ]":
            i += 1
        sd_id = text[start:i]
        assert _sd_name(sd_id), sd_id
        params: dict[str, str] = {}
        while text[i] == " ":
            i += 1
            start = i
            while text[i] != "=":
                i += 1
            name = text[start:i]
            assert _sd_name(name) and text[i + 1] == '"', name
            i += 2
            value = []
            while text[i] != '"':
                if text[i] == "\\" and text[i + 1] in '"\\]':
                    value.append(text[i + 1])
                    i += 2
                else:
                    assert text[i] not in '"]', "an unescaped quote or bracket in a PARAM-VALUE"
                    value.append(text[i])  # a backslash before anything else is itself (RFC 5424 6.3.3)
                    i += 1
            params[name] = "".join(value)
            i += 1
        assert text[i] == "]"
        i += 1
        elements[sd_id] = params
    assert i > 0, "no structured data"
    return elements, i


def _sd_name(name: str) -> bool:
    return 1 <= len(name) <= 32 and _printusascii(name) and not set(name) & set('= ]"')


def _unescape(value: str, escapes: dict[str, str]) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\":
            assert i + 1 < len(value) and value[i + 1] in escapes, f"undefined escape in {value!r}"
            out.append(escapes[value[i + 1]])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _split_header(text: str, count: int) -> tuple[list[str], str]:
    """`count` fields that end at unescaped pipes, and the rest."""
    fields: list[str] = []
    start = i = 0
    while len(fields) < count:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "|":
            fields.append(text[start:i])
            start = i + 1
        i += 1
    return fields, text[start:]


HEADER_ESCAPES = {"\\": "\\", "|": "|"}
CEF_EXTENSION_ESCAPES = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}


def parse_cef(msg: str) -> tuple[list[str], dict[str, str]]:
    """CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension.

    In the extension a key is a run of letters, digits and `_.[]` followed by an unescaped `=`, after a
    space or at the start; a value runs to the space before the next key.
    """
    assert not LINE_ENDS & set(msg)
    fields, extension = _split_header(msg, 7)
    header = [_unescape(field, HEADER_ESCAPES) for field in fields]
    assert header[0] == "CEF:0" and 0 <= int(header[6]) <= 10
    starts: list[tuple[int, int]] = []  # (key start, index of its '=')
    i = 0
    while i < len(extension):
        if extension[i] == "\\":
            i += 2
            continue
        if extension[i] == "=":
            key_start = i
            while key_start > 0 and (extension[key_start - 1].isalnum() or extension[key_start - 1] in "_.[]"):
                key_start -= 1
            assert key_start < i and (key_start == 0 or extension[key_start - 1] == " "), \
                f"an unescaped '=' that does not end a key: {extension[max(0, i - 20):i + 5]!r}"
            starts.append((key_start, i))
        i += 1
    values: dict[str, str] = {}
    for n, (key_start, equals) in enumerate(starts):
        end = starts[n + 1][0] - 1 if n + 1 < len(starts) else len(extension)
        key = extension[key_start:equals]
        assert key not in values, f"key {key} twice"
        values[key] = _unescape(extension[equals + 1:end], CEF_EXTENSION_ESCAPES)
    return header, values


LEEF_VALUE_ESCAPES = {"\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def parse_leef(msg: str) -> tuple[list[str], dict[str, str]]:
    """LEEF:2.0|Vendor|Product|Version|EventID|DelimiterCharacter|attributes, the delimiter given as x09 (tab);
    each attribute key=value, split at its first `=`."""
    assert not LINE_ENDS & set(msg)
    fields, attributes = _split_header(msg, 6)
    header = [_unescape(field, HEADER_ESCAPES) for field in fields]
    assert header[0] == "LEEF:2.0" and header[5] == "x09"
    values: dict[str, str] = {}
    for pair in attributes.split("\t"):
        key, equals, value = pair.partition("=")
        assert equals and key and key not in values, pair
        values[key] = _unescape(value, LEEF_VALUE_ESCAPES)
    return header, values


def parse_json_line(line: bytes) -> Any:
    """One line of a JSON-lines file: UTF-8, a single JSON value, LF-terminated, and a line for every reader."""
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    text = line[:-1].decode("utf-8")
    assert len((text + "\n").splitlines()) == 1 and not LINE_ENDS & set(text), "a line break inside the line"
    return json.loads(text)


def parse_hec_batch(body: bytes) -> list[Any]:
    """Splunk HEC: JSON objects concatenated, each an envelope with `event`."""
    text, decoder, items, i = body.decode("utf-8"), json.JSONDecoder(), [], 0
    while i < len(text):
        item, i = decoder.raw_decode(text, i)
        assert isinstance(item, dict) and "event" in item
        items.append(item)
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
    return items


def parse_bulk(body: bytes) -> list[tuple[dict[str, Any], Any]]:
    """Elasticsearch `_bulk` NDJSON: (action, source) line pairs, each line UTF-8 JSON, the body LF-terminated."""
    assert body.endswith(b"\n")
    lines = body.split(b"\n")[:-1]
    assert len(lines) % 2 == 0
    pairs = []
    for action, source in zip(lines[::2], lines[1::2], strict=True):
        pairs.append((parse_json_line(action + b"\n"), parse_json_line(source + b"\n")))
    return pairs
