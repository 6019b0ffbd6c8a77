"""The sealed file format, and streaming encryption, decryption and verification of it (constant memory).

Byte by byte (all integers big-endian):

    offset 0    8 bytes   magic b"WWSEAL\\x00\\x01" (format family, then format version 1)
    offset 8    4 bytes   N, the length of the JSON header (at most 16 MiB)
    offset 12   N bytes   the JSON header, UTF-8, compact, keys sorted:
                            version       1
                            chunk_size    plaintext bytes per chunk (default 4 MiB; 1 byte to 64 MiB)
                            size          the original file's size in bytes
                            sha256        hex SHA-256 of the original plaintext
                            name          the original file name (its last path component; non-UTF-8
                                          bytes kept as \\udcXX escapes)
                            format        the plaintext's format id (as `weightwarden scan` reports it),
                                          or null when it is not a model file we know
                            model         the logical model the plaintext belongs to, as the inventory
                                          names it, or null
                            keys          [{kind: "machine"|"escrow", key_id, ephemeral, nonce, wrapped}]:
                                          the data key wrapped per recipient (`seal.keys`; bytes in base64)
                            nonce_prefix  8 random bytes, base64
                            prints        the plaintext's tensor prints, each [fingerprint, elements, bytes,
                                          informative]: hashes and counts only, never tensor values (the
                                          similarity corners and tensor names stay inside the ciphertext)
                          `format`, `model` and `prints` are what lets the agent keep a sealed file in its
                          inventory as the model it holds, and recognise a copy of it (docs/sealing.md).
    offset 12+N           the chunks, in order. Chunk i holds plaintext bytes [i*chunk_size, (i+1)*chunk_size)
                          of the original, so every chunk but the last is full; there are
                          max(1, ceil(size / chunk_size)) chunks (an empty file is one empty final chunk).
                          Each is stored as its ciphertext (as long as its plaintext) then its 16-byte tag:
                            AES-256-GCM, key = the 32-byte random data key of this file,
                            nonce = nonce_prefix || i (4 bytes),
                            AAD   = SHA-256(bytes 0 .. 12+N of the file) || i (4 bytes) || final (1 byte: 1 on
                                    the last chunk, else 0).
    end                   nothing after the last chunk: the file is exactly 12 + N + size + 16 * chunks bytes.

What the AAD buys: a header edit changes its hash, so chunk 0 already fails; reordering or swapping chunks
(also between two files: each has its own data key and header) fails on the counter or the key; cutting
the file at a chunk boundary leaves a last chunk without the final flag; appended bytes break the length.
The plaintext's SHA-256 is checked again after the last chunk, so the whole file is authenticated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from weightwarden.agent.events import TensorPrint
from weightwarden.agent.seal.keys import WrappedKey

MAGIC = b"WWSEAL\x00\x01"
VERSION = 1
DEFAULT_CHUNK_SIZE = 4 << 20
MAX_CHUNK_SIZE = 64 << 20
# A header holds a print per tensor (about 110 bytes each): 16 MiB leaves room for 100,000 tensors and still
# bounds what a hostile header can make a reader allocate.
MAX_HEADER = 16 << 20
MAX_NAME_CHARS = 4096
TAG = 16
_PREFIX = struct.Struct(">8sI")


class SealFormatError(Exception):
    """A sealed file is malformed, truncated or was edited; the message says where (header, which chunk)."""


@dataclass(frozen=True)
class SealHeader:
    chunk_size: int
    size: int
    sha256: str
    name: str
    keys: tuple[WrappedKey, ...]
    nonce_prefix: bytes
    prints: tuple[TensorPrint, ...] = field(default=())
    format: str | None = None
    model: str | None = None
    version: int = VERSION

    @property
    def chunks(self) -> int:
        return max(1, -(-self.size // self.chunk_size))

    def sealed_size(self, header_length: int) -> int:
        return header_length + self.size + TAG * self.chunks

    def encode(self) -> bytes:
        """Magic, length and JSON: the bytes before chunk 0, whose SHA-256 goes into every chunk's AAD."""
        document = {"version": self.version, "chunk_size": self.chunk_size, "size": self.size,
                    "sha256": self.sha256, "name": self.name, "keys": [key.to_json() for key in self.keys],
                    "nonce_prefix": base64.b64encode(self.nonce_prefix).decode("ascii"),
                    "prints": [_print_json(p) for p in self.prints], "format": self.format,
                    "model": self.model}
        text = json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return _PREFIX.pack(MAGIC, len(text)) + text


def is_sealed(head: bytes) -> bool:
    return head.startswith(MAGIC)


def read_header(fd: int) -> tuple[SealHeader, bytes]:
    """The header at the start of `fd` and its raw bytes (magic and length included)."""
    prefix = read_exact(fd, _PREFIX.size, 0)
    if len(prefix) < _PREFIX.size or not prefix.startswith(MAGIC[:6]):
        raise SealFormatError("not a sealed file (no WWSEAL magic)")
    magic, length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise SealFormatError(f"unsupported sealed format version {magic[6:].hex()}")
    if length > MAX_HEADER:
        raise SealFormatError(f"header claims {length} bytes (at most {MAX_HEADER})")
    text = read_exact(fd, length, _PREFIX.size)
    if len(text) < length:
        raise SealFormatError("truncated in the header")
    try:
        document = json.loads(text)
        header = _header_from(document)
    except (ValueError, TypeError, KeyError, RecursionError) as error:
        raise SealFormatError(f"malformed header: {error}") from None
    return header, prefix + text


def _header_from(document: object) -> SealHeader:
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    if document["version"] != VERSION:
        raise ValueError(f"unsupported version {document['version']!r}")
    chunk_size, size = document["chunk_size"], document["size"]
    if not isinstance(chunk_size, int) or not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"bad chunk_size {chunk_size!r}")
    if not isinstance(size, int) or size < 0 or -(-size // chunk_size) >= 1 << 32:
        raise ValueError(f"bad size {size!r}")
    sha256, name, prints = document["sha256"], document["name"], document["prints"]
    if not isinstance(sha256, str) or len(sha256) != 64 or not isinstance(name, str) or not isinstance(prints, list):
        raise ValueError("bad sha256, name or prints")
    plain_format, model = document.get("format"), document.get("model")  # absent in the first sealed files
    for label, text in (("format", plain_format), ("model", model)):
        if text is not None and (not isinstance(text, str) or not text or len(text) > MAX_NAME_CHARS):
            raise ValueError(f"bad {label} {str(text)[:40]!r}")
    keys = document["keys"]
    if not isinstance(keys, list):
        raise ValueError("keys is not a list")
    prefix = base64.b64decode(document["nonce_prefix"], validate=True)
    if len(prefix) != 8:
        raise ValueError("nonce_prefix is not 8 bytes")
    return SealHeader(chunk_size, size, sha256, name, tuple(WrappedKey.from_json(key) for key in keys), prefix,
                      tuple(_print_from(item, n) for n, item in enumerate(prints)), plain_format, model)


def _print_json(tensor: TensorPrint) -> list[object]:
    return [tensor.fingerprint, tensor.elements, tensor.bytes, tensor.informative]


def _print_from(item: object, index: int) -> TensorPrint:
    if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str) and 0 < len(item[0]) <= 128
            and all(type(n) is int and n >= 0 for n in item[1:3]) and isinstance(item[3], bool)):
        raise ValueError(f"bad print {index}: [fingerprint, elements, bytes, informative] expected")
    return TensorPrint(item[0], item[1], item[2], item[3])


def _aad(header_hash: bytes, index: int, final: bool) -> bytes:
    return header_hash + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def encrypt_stream(source: int, target: int, header: SealHeader, header_bytes: bytes, data_key: bytes,
                   on_chunk: Callable[[int], None] | None = None) -> None:
    """Write the chunks of `source` (read from offset 0, `header.size` bytes) to `target` at its position.

    Two buffers: a helper thread writes chunk i while this one reads and encrypts chunk i+1 (the kernel's
    write of the page cache costs as much CPU as the cipher, so on two cores they overlap).
    """
    cipher = AESGCM(data_key)
    header_hash = hashlib.sha256(header_bytes).digest()
    plain = bytearray(min(header.chunk_size, header.size))
    sealed = [bytearray(len(plain) + TAG), bytearray(len(plain) + TAG)]
    offset = 0
    written = _Writeback(target)
    with _Behind() as behind:
        for index in range(header.chunks):
            length = min(header.chunk_size, header.size - offset)
            view = memoryview(plain)[:length]
            if read_into(source, view, offset) != length:
                raise SealFormatError(f"the file shrank while being sealed (at byte {offset})")
            out = memoryview(sealed[index % 2])[:length + TAG]
            cipher.encrypt_into(header.nonce_prefix + index.to_bytes(4, "big"), view,
                                _aad(header_hash, index, index == header.chunks - 1), out)
            behind.then(_write_chunk, written, out, index, on_chunk)
            offset += length
    if read_exact(source, 1, offset):
        raise SealFormatError(f"the file grew while being sealed (past byte {offset})")


def _write_chunk(target: _Writeback, out: memoryview, index: int, on_chunk: Callable[[int], None] | None) -> None:
    target.write(out)
    if on_chunk is not None:
        on_chunk(index)


# Measured on the benchmark VM: writing 2 GiB (+ fsync) cost 1.1 s of kernel CPU into an empty page cache,
# and 3.7-3.9 s when the page cache already held a few GiB (the kernel reclaims as it writes); syncing and
# dropping every 64 MiB written cost 0.7-0.8 s, and 1.9 s of wall clock instead of 6.2-7.0 s.
WRITEBACK_BYTES = 64 << 20


class _Writeback:
    """Writes to `fd` from its position, keeping what was written out of the page cache: every
    WRITEBACK_BYTES the file is synced (fdatasync) and the pages written so far are dropped
    (POSIX_FADV_DONTNEED). A sealed cold checkpoint, or an unsealed one, is not read again at once, so its
    pages are not worth the memory; and the final fsync before the rename finds little left to write."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = os.lseek(fd, 0, os.SEEK_CUR)
        self.synced = 0

    def write(self, data: memoryview) -> None:
        write_all(self.fd, data)
        self.written += len(data)
        if self.written - self.synced >= WRITEBACK_BYTES:
            os.fdatasync(self.fd)
            if hasattr(os, "posix_fadvise"):  # not on macOS
                os.posix_fadvise(self.fd, self.synced, self.written - self.synced, os.POSIX_FADV_DONTNEED)
            self.synced = self.written


class _Behind:
    """Runs each step on one helper thread, in order, at most one step behind the caller: when `then`
    returns, every earlier step is done, so the buffer of step i-1 may be filled again for step i+1.
    Errors come back to the caller on the next step or at the end."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wwseal-io")
        self._pending: list[Future[None]] = []

    def then(self, step: Callable[..., None], *args: object) -> None:
        self._pending.append(self._pool.submit(step, *args))
        while len(self._pending) > 1:
            self._pending.pop(0).result()

    def __enter__(self) -> _Behind:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(wait=True)


def decrypt_stream(source: int, header: SealHeader, header_bytes: bytes, data_key: bytes,
                   target: int | None = None, on_chunk: Callable[[int], None] | None = None) -> None:
    """Check every chunk of `source` (and write the plaintext to `target` when given); SealFormatError says
    which chunk failed. The plaintext's SHA-256 and the file's exact length are checked at the end.

    As in `encrypt_stream`, a helper thread hashes (and writes) chunk i while this one decrypts chunk i+1.
    """
    cipher = AESGCM(data_key)
    header_hash = hashlib.sha256(header_bytes).digest()
    digest = hashlib.sha256()
    sealed = bytearray(min(header.chunk_size, header.size) + TAG)
    plain = [bytearray(len(sealed) - TAG), bytearray(len(sealed) - TAG)]
    position = len(header_bytes)
    left = header.size
    written = _Writeback(target) if target is not None else None

    def consume(out: memoryview, index: int) -> None:
        digest.update(out)
        if written is not None:
            written.write(out)
        if on_chunk is not None:
            on_chunk(index)

    with _Behind() as behind:
        for index in range(header.chunks):
            length = min(header.chunk_size, left)
            view = memoryview(sealed)[:length + TAG]
            got = read_into(source, view, position)
            where = f"chunk {index} of {header.chunks}"
            if got < len(view):
                raise SealFormatError(f"truncated: {where} has {got} of {len(view)} bytes")
            out = memoryview(plain[index % 2])[:length]
            try:
                cipher.decrypt_into(header.nonce_prefix + index.to_bytes(4, "big"), view,
                                    _aad(header_hash, index, index == header.chunks - 1), out)
            except InvalidTag:
                hint = " (or the header was edited)" if index == 0 else ""
                raise SealFormatError(f"{where} fails authentication: damaged, moved or swapped{hint}") from None
            behind.then(consume, out, index)
            position += len(view)
            left -= length
    if read_exact(source, 1, position):
        size = os.fstat(source).st_size
        raise SealFormatError(f"{size - position} unexpected bytes after the last chunk")
    if digest.hexdigest() != header.sha256:
        raise SealFormatError("the plaintext's SHA-256 differs from the header's")


# Measured on the benchmark VM (Linux 6.18, ext4), moving 1 GiB through a 4 MiB buffer in slices of each
# size: write() in 4 MiB slices cost 2.05 s of kernel CPU, 1 MiB 0.3-0.8 s, 256-512 KiB 0.23-0.25 s (steady
# across runs); preadv() was cheapest in 1 MiB slices (0.06 s). So the chunk buffers go to the kernel in
# 512 KiB slices and come from it in 1 MiB slices.
_READ_SLICE = 1 << 20
_WRITE_SLICE = 512 << 10


def read_into(fd: int, buffer: memoryview, offset: int) -> int:
    """Fill `buffer` from `offset`, looping over short reads; returns the bytes read (fewer only at EOF)."""
    done = 0
    while done < len(buffer):
        count = os.preadv(fd, [buffer[done:done + _READ_SLICE]], offset + done)
        if count == 0:
            break
        done += count
    return done


def read_exact(fd: int, length: int, offset: int) -> bytes:
    buffer = bytearray(length)
    return bytes(buffer[:read_into(fd, memoryview(buffer), offset)])


def write_all(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[:_WRITE_SLICE]):]
