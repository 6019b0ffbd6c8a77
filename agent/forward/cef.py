"""CEF (ArcSight Common Event Format) text for one record: a pure function, no I/O.

Header fields escape `\\` and `|`; extension values escape `\\`, `=`, newline and CR (pipes are legal
there); other line breaks, control characters and lone surrogates: see `_CONTROLS` below. Values are cut
to keep the whole syslog message under 8 KiB, longest first, before escaping, so an escape is never split.
Our record id goes in `externalId` (receivers deduplicate on it) and the per-agent sequence in `cn1`.
An alert's MITRE ATT&CK ids go in `flexString1` (label mitreAttackTechniques) and its ATLAS ids in
`flexString2` (label mitreAtlasTechniques), comma-separated: cs1..cs6 already carry other facts.
"""

from __future__ import annotations

import ipaddress

from weightwarden.agent import __version__
from weightwarden.agent.forward.fields import PRODUCT, VENDOR, Flat
from weightwarden.agent.forward.text import LINE_BREAKS, well_formed

MAX_EXTENSION_BYTES = 6500  # leaves room for the RFC 5424 header and SD under 8 KiB
NAME_LIMIT = 512


# CEF defines no escape for tabs or other control characters, and receivers mangle them (rsyslog writes
# #011): C0 and C1 controls become spaces. Newlines and CRs have escapes in the extension (not in the
# header); so do the Unicode line breaks NEL (U+0085), LINE SEPARATOR (U+2028) and PARAGRAPH SEPARATOR
# (U+2029), written as the newline escape `\n` (line readers split on them: raw, they would cut the
# message in two). A lone surrogate is written as the text `\uXXXX` (text.well_formed).
_CONTROLS = {code: " " for code in [*range(0x20), *range(0x7F, 0xA0)] if code not in (0x0A, 0x0D, 0x85)}
_HEADER_CONTROLS = {**_CONTROLS, **{ord(ch): " " for ch in "\n\r" + LINE_BREAKS}}
_EXTENSION_CONTROLS = {**_CONTROLS, **{ord(ch): "\n" for ch in LINE_BREAKS}}


def escape_header(value: str) -> str:
    if not value.isprintable():  # fast path: str.translate is slow, control characters are rare
        value = well_formed(value).translate(_HEADER_CONTROLS)
    return value.replace("\\", "\\\\").replace("|", "\\|")


def escape_extension(value: str) -> str:
    printable = value.isprintable()
    if not printable:  # before the backslashes are doubled: its `\uXXXX` is text, escaped like any other
        value = well_formed(value)
    value = value.replace("\\", "\\\\").replace("=", "\\=")
    if not printable:  # fast path: str.translate is slow, control characters are rare
        value = value.translate(_EXTENSION_CONTROLS).replace("\n", "\\n").replace("\r", "\\r")
    return value


def extension_pairs(flat: Flat, host: str) -> list[tuple[str, str]]:
    """The extension as (key, raw value) pairs, in a stable order; unset values are left out."""
    pairs: list[tuple[str, object]] = [
        ("rt", flat.time_ms),
        ("externalId", flat.id),
        ("cn1Label", "sequence"), ("cn1", flat.sequence),
        ("cat", flat.category),
        ("act", flat.action),
        ("dvchost", host),
        ("msg", flat.message),
        ("fname", flat.file_name),
        ("filePath", flat.file_path),
        ("fsize", flat.file_size),
        ("fileType", flat.file_format),
        ("oldFilePath", flat.old_path),
    ]
    if flat.file_sha256:
        pairs += [("fileHash", flat.file_sha256), ("cs1Label", "hashAlgorithm"), ("cs1", "sha256")]
    if flat.model is not None:
        pairs += [("cs2Label", "model"), ("cs2", flat.model)]
    pairs += [("sproc", flat.process_name), ("spid", flat.pid), ("suser", flat.user)]
    if flat.command_line is not None:
        pairs += [("cs3Label", "commandLine"), ("cs3", flat.command_line)]
    if flat.executable is not None:
        pairs += [("cs6Label", "executable"), ("cs6", flat.executable)]
    if flat.ppid is not None:
        pairs += [("cn2Label", "parentPid"), ("cn2", flat.ppid)]
    if flat.dest_kind is not None:
        pairs += [("cs4Label", "destinationKind"), ("cs4", flat.dest_kind)]
    if flat.dest_path is not None:
        pairs += [("cs5Label", "destinationPath"), ("cs5", flat.dest_path)]
    if flat.dest_address:
        pairs.append(("dst" if _is_ip(flat.dest_address) else "dhost", flat.dest_address))
    pairs.append(("dpt", flat.dest_port))
    if flat.attack:
        pairs += [("flexString1Label", "mitreAttackTechniques"), ("flexString1", ",".join(flat.attack))]
    if flat.atlas:
        pairs += [("flexString2Label", "mitreAtlasTechniques"), ("flexString2", ",".join(flat.atlas))]
    return [(key, str(value)) for key, value in pairs if value is not None]


def render(flat: Flat, host: str, *, max_bytes: int = MAX_EXTENSION_BYTES) -> str:
    header = "|".join([
        "CEF:0", escape_header(VENDOR), escape_header(PRODUCT), escape_header(__version__),
        escape_header(flat.signature[:1023]), escape_header(flat.name[:NAME_LIMIT]), str(flat.severity),
    ])
    pairs = extension_pairs(flat, host)
    extension = " ".join(f"{key}={escape_extension(value)}" for key, value in pairs)
    if len(extension) * 4 > max_bytes and len(extension.encode()) > max_bytes:  # rare: cut the longest values
        extension = " ".join(f"{key}={escape_extension(value)}" for key, value in _fit(pairs, max_bytes))
    return header + "|" + extension


def _fit(pairs: list[tuple[str, str]], max_bytes: int) -> list[tuple[str, str]]:
    """Cut the longest values (never ids, numbers or labels) until the extension fits."""
    def size() -> int:
        return sum(len(k) + 2 + len(escape_extension(v).encode()) for k, v in pairs)

    protected = {"rt", "externalId", "cn1", "cn1Label", "cn2", "spid", "fsize", "dpt", "flexString1",
                 "flexString1Label", "flexString2", "flexString2Label"}
    while size() > max_bytes:
        index, (key, value) = max(((i, p) for i, p in enumerate(pairs) if p[0] not in protected),
                                  key=lambda item: len(item[1][1].encode()))
        if len(value) <= 16:
            break
        pairs[index] = (key, value[: len(value) // 2] + "…")
    return pairs


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
