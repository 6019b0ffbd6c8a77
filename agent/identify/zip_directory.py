"""Find and walk a zip file's central directory with bounded reads.

Lax like the readers that load these files (torch's miniz, numpy's zipfile): CRCs and flags are not
checked. Strict where a hostile archive could make us read or allocate: every offset and size is checked
against the file size, and the central directory is read with at most one pread of MAX_DIRECTORY_BYTES.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from weightwarden.agent.safe_open import read_at

MAX_DIRECTORY_BYTES = 16 << 20
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
_CENTRAL_HEADER = b"PK\x01\x02"
_CENTRAL_HEADER_SIZE = 46
_LOCAL_HEADER = b"PK\x03\x04"
_LOCAL_HEADER_SIZE = 30
_ZIP64_EXTRA_ID = 0x0001
_UTF8_FLAG = 0x0800
# A comment may contain an EOCD signature: try a few candidates from the end before giving up.
_MAX_EOCD_CANDIDATES = 8


class ZipError(Exception):
    """Not a zip we can read within our bounds."""


class Member(NamedTuple):
    name: str
    method: int  # 0 stored, 8 deflate, ...
    local_header_offset: int
    # As the central directory says; 0xFFFFFFFF when the real value is in a ZIP64 extra field.
    compressed_size: int = 0
    size: int = 0


@dataclass(frozen=True)
class CentralDirectory:
    data: bytes
    zip64: bool


@dataclass(frozen=True)
class ZipSource:
    """The file and the parts of it already in memory; `read` reuses them before reading again."""

    fd: int
    size: int
    head: bytes
    tail: bytes

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ZipError("points outside the file")
        tail_start = self.size - len(self.tail)
        if offset + length <= len(self.head):
            data = self.head[offset:offset + length]
        elif offset >= tail_start:
            data = self.tail[offset - tail_start:offset - tail_start + length]
        else:
            data = read_at(self.fd, offset, length)
        if len(data) != length:
            raise ZipError("file shrank while reading")
        return data


def find_central_directory(source: ZipSource) -> CentralDirectory:
    """Locate the end-of-central-directory record in the tail and read the directory it points to."""
    tail = source.tail
    end = len(tail)
    for _ in range(_MAX_EOCD_CANDIDATES):
        position = tail.rfind(_EOCD, 0, end)
        if position < 0:
            break
        if position + _EOCD_SIZE <= len(tail):
            try:
                return _directory_from_eocd(source, source.size - len(tail) + position)
            except ZipError:
                pass
        end = position + len(_EOCD) - 1
    raise ZipError("no usable end-of-central-directory record")


def _directory_from_eocd(source: ZipSource, eocd_offset: int) -> CentralDirectory:
    record = source.read(eocd_offset, _EOCD_SIZE)
    directory_size, directory_offset = struct.unpack_from("<II", record, 12)
    limit, zip64 = eocd_offset, False
    if eocd_offset >= _ZIP64_LOCATOR_SIZE:
        locator = source.read(eocd_offset - _ZIP64_LOCATOR_SIZE, _ZIP64_LOCATOR_SIZE)
        if locator[:4] == _ZIP64_LOCATOR:
            # ZIP64: the real sizes live in the ZIP64 EOCD record (torch always writes one).
            (record64_offset,) = struct.unpack_from("<Q", locator, 8)
            record64 = source.read(record64_offset, _ZIP64_EOCD_SIZE)
            if record64[:4] != _ZIP64_EOCD:
                raise ZipError("bad ZIP64 end record")
            directory_size, directory_offset = struct.unpack_from("<QQ", record64, 40)
            limit, zip64 = record64_offset, True
    if directory_size > MAX_DIRECTORY_BYTES:
        raise ZipError("central directory too large")
    if directory_offset + directory_size > limit:
        raise ZipError("central directory overlaps its end record or lies past the end of the file")
    return CentralDirectory(source.read(directory_offset, directory_size), zip64)


def iter_members(directory: CentralDirectory) -> Iterator[Member]:
    """The members in central-directory order. Raises ZipError on a malformed entry."""
    data, position = directory.data, 0
    while position < len(data):
        if data[position:position + 4] != _CENTRAL_HEADER or position + _CENTRAL_HEADER_SIZE > len(data):
            raise ZipError("bad central directory entry")
        flags, method = struct.unpack_from("<HH", data, position + 8)
        compressed, uncompressed = struct.unpack_from("<II", data, position + 20)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, position + 28)
        (local_offset,) = struct.unpack_from("<I", data, position + 42)
        name_start = position + _CENTRAL_HEADER_SIZE
        extra_start = name_start + name_len
        position = extra_start + extra_len + comment_len
        if position > len(data):
            raise ZipError("central directory entry runs past the directory")
        raw_name = data[name_start:extra_start]
        # Without the UTF-8 flag names are CP437 by the spec; torch and numpy write ASCII either way.
        name = raw_name.decode("utf-8", errors="replace") if flags & _UTF8_FLAG else raw_name.decode("cp437")
        if local_offset == 0xFFFFFFFF:
            local_offset = _zip64_local_offset(data[extra_start:extra_start + extra_len],
                                               uncompressed == 0xFFFFFFFF, compressed == 0xFFFFFFFF)
        yield Member(name, method, local_offset, compressed, uncompressed)


def read_member_start(source: ZipSource, member: Member, length: int) -> bytes:
    """The first `length` bytes of a member's (stored) data, found through its local header."""
    data_offset = member_data_offset(source, member)
    return source.read(data_offset, min(length, source.size - data_offset))


def member_data_offset(source: ZipSource, member: Member) -> int:
    """The file offset of a member's data: after its local header, whose name and extra field (torch pads
    it to align tensor data) may differ in length from the central directory's copy."""
    header = source.read(member.local_header_offset, _LOCAL_HEADER_SIZE)
    if header[:4] != _LOCAL_HEADER:
        raise ZipError("bad local header")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    data_offset = int(member.local_header_offset + _LOCAL_HEADER_SIZE + name_len + extra_len)
    if data_offset > source.size:
        raise ZipError("member data starts past the end of the file")
    return data_offset


def _zip64_local_offset(extra: bytes, has_uncompressed: bool, has_compressed: bool) -> int:
    """The local header offset from a ZIP64 extra field, which lists only the fields that overflowed."""
    position = 0
    while position + 4 <= len(extra):
        field_id, field_len = struct.unpack_from("<HH", extra, position)
        body = extra[position + 4:position + 4 + field_len]
        if field_id == _ZIP64_EXTRA_ID:
            index = 8 * (int(has_uncompressed) + int(has_compressed))
            if index + 8 > len(body):
                raise ZipError("short ZIP64 extra field")
            return int(struct.unpack_from("<Q", body, index)[0])
        position += 4 + field_len
    raise ZipError("missing ZIP64 extra field")
