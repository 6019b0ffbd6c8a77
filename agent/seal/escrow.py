"""The organisation's escrow key: given at enrolment, kept in the agent's data dir, used by every seal.

`weightwarden enroll --escrow-public-key FILE` reads an X25519 public key (PEM SubjectPublicKeyInfo, the 32
raw bytes, or those bytes in base64 on one line), checks it is usable and writes it to ESCROW_NAME in the
data dir: written by the enrolling user (root in system mode) only, readable as the machine's public sealing
key is. Who could replace this file could read every file sealed afterwards, so a seal refuses a key file
that someone else owns or that others may write; a missing file means no escrow.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from weightwarden.agent.seal.keys import SealKeyError, load_public, public_pem

ESCROW_NAME = "escrow.pub.pem"
MAX_KEY_FILE = 64 * 1024


def parse_public_key(data: bytes, where: str) -> X25519PublicKey:
    """An X25519 public key from PEM, 32 raw bytes or their base64; SealKeyError says what is wrong."""
    key: object
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as error:
            raise SealKeyError(f"{where}: not a PEM public key: {error}") from None
        if not isinstance(key, X25519PublicKey):
            raise SealKeyError(f"{where}: a {type(key).__name__.removeprefix('_')}, not an X25519 public key")
    else:
        raw = data
        if len(data) != 32:
            try:
                raw = base64.b64decode(data.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise SealKeyError(f"{where}: neither PEM, nor 32 raw bytes, nor base64 of them") from None
        if len(raw) != 32:
            raise SealKeyError(f"{where}: an X25519 public key is 32 bytes, this is {len(raw)}")
        key = X25519PublicKey.from_public_bytes(raw)
    try:  # a low-order point gives every wrap the same all-zero secret: cryptography refuses the exchange
        X25519PrivateKey.generate().exchange(key)
    except ValueError:
        raise SealKeyError(f"{where}: not a usable X25519 public key (a low-order point)") from None
    return key


def read_public_key_file(path: str) -> X25519PublicKey:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except OSError as error:
        raise SealKeyError(f"{path}: {error.strerror or error}") from None
    if len(data) > MAX_KEY_FILE:
        raise SealKeyError(f"{path}: too large for a public key")
    return parse_public_key(data, path)


def store_escrow_key(data_dir: str, key: X25519PublicKey) -> Path:
    """Write the escrow key into the data dir (atomically, mode 0644 in the data dir's own protection)."""
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = directory / ESCROW_NAME
    temporary = directory / f".{ESCROW_NAME}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, public_pem(key))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    return target


def enrolled_escrow_key(data_dir: str) -> X25519PublicKey | None:
    """The escrow key enrolment stored, None when there is none; SealKeyError when it cannot be trusted."""
    path = os.path.join(data_dir, ESCROW_NAME)
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SealKeyError(f"{path}: {error.strerror}: the enrolled escrow key cannot be read; seal as the agent's "
                           "user (root in system mode) or pass --escrow FILE") from None
    if not stat.S_ISREG(info.st_mode) or info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
        raise SealKeyError(f"{path}: the escrow key file is not a regular file written only by its owner (root "
                           "or you); refusing to seal for a key someone else may have put there")
    try:
        return load_public(path)
    except SealKeyError as error:
        raise SealKeyError(f"{error}; seal as the agent's user (root in system mode) or pass --escrow FILE") from None
