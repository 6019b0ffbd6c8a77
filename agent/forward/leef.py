"""LEEF 2.0 (IBM QRadar) text for one record: a pure function, no I/O.

`LEEF:2.0|Vendor|Product|Version|EventID|x09|` then tab-separated key=value pairs. LEEF has no escaping
for values, so tabs, CR and LF in a value become the two-character sequences `\\t`, `\\r`, `\\n` (and a
backslash is doubled so that is unambiguous); `|` in header fields is escaped with a backslash.
An alert's MITRE ATT&CK ids go in the custom key `mitreAttack`, its ATLAS ids in `mitreAtlas` (comma-separated).
"""

from __future__ import annotations

from weightwarden.agent import __version__
from weightwarden.agent.forward.fields import PRODUCT, VENDOR, Flat
from weightwarden.agent.forward.text import LINE_BREAKS, well_formed

DEV_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"  # Java SimpleDateFormat; X keeps the zone (Z)
MAX_VALUE = 1000


# Control characters (C0 and C1) become spaces; the Unicode line breaks NEL (U+0085), LINE SEPARATOR
# (U+2028) and PARAGRAPH SEPARATOR (U+2029) are written `\\n` in values (spaces in the header), like LF:
# raw, a line reader would cut the event in two. A lone surrogate is written as the text `\\uXXXX`.
_HEADER_CONTROLS = {code: " " for code in [*range(0x20), *range(0x7F, 0xA0)]} | {ord(ch): " " for ch in LINE_BREAKS}
_CONTROLS = {code: " " for code in [*range(0x20), *range(0x7F, 0xA0)] if code not in (0x09, 0x0A, 0x0D, 0x85)}
_VALUE_CONTROLS = _CONTROLS | {ord(ch): "\n" for ch in LINE_BREAKS}


def escape_header(value: str) -> str:
    if not value.isprintable():
        value = well_formed(value).translate(_HEADER_CONTROLS)
    return value.replace("\\", "\\\\").replace("|", "\\|")


def escape_value(value: str) -> str:
    if not value.isprintable():
        value = well_formed(value).translate(_VALUE_CONTROLS)
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r")
            .replace("\n", "\\n"))


def attributes(flat: Flat, host: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, object]] = [
        ("devTime", flat.time), ("devTimeFormat", DEV_TIME_FORMAT),
        ("externalId", flat.id), ("sequence", flat.sequence), ("cat", flat.category), ("sev", flat.severity),
        ("identHostName", host), ("msg", flat.message), ("action", flat.action), ("model", flat.model),
        ("fileName", flat.file_name), ("filePath", flat.file_path), ("fileSize", flat.file_size),
        ("fileHash", flat.file_sha256), ("fileFormat", flat.file_format), ("oldFilePath", flat.old_path),
        ("procName", flat.process_name), ("pid", flat.pid), ("procPath", flat.executable),
        ("procCmdLine", flat.command_line), ("usrName", flat.user), ("ppid", flat.ppid),
        ("dstKind", flat.dest_kind), ("dst", flat.dest_address), ("dstPort", flat.dest_port),
        ("dstPath", flat.dest_path),
        ("mitreAttack", ",".join(flat.attack) or None), ("mitreAtlas", ",".join(flat.atlas) or None),
    ]
    return [(key, str(value)[:MAX_VALUE]) for key, value in pairs if value is not None]


def render(flat: Flat, host: str) -> str:
    header = "|".join(["LEEF:2.0", escape_header(VENDOR), escape_header(PRODUCT), escape_header(__version__),
                       escape_header(flat.signature[:255]), "x09"])
    return header + "|" + "\t".join(f"{key}={escape_value(value)}" for key, value in attributes(flat, host))
