"""The machine's X25519 sealing key and the wrapping of a file's data key for it (and for an escrow key).

The machine key pair lives in the agent's data dir beside its Ed25519 signing key (`agent.keys`): the
private half `seal_key.pem` (PKCS#8, mode 0600, created with O_EXCL on first use), the public half
`seal_key.pub.pem` (SubjectPublicKeyInfo). Sealing needs only the public half, so anyone who can read it may
seal; unwrapping needs the private half, which in system mode only root can read.

Wrapping a 32-byte data key for a recipient X25519 public key R (ephemeral-static, as in HPKE's base mode):
    e        = a fresh X25519 key pair, used once
    shared   = X25519(e.private, R)
    kek      = HKDF-SHA256(shared, salt = e.public || R, info = b"weightwarden seal v1 key wrap", 32 bytes)
    wrapped  = AES-256-GCM(kek).encrypt(nonce = 12 random bytes, data key, aad = b"wwseal-wrap:" || kind)
The key id of R is the first 16 hex digits of SHA-256 over its 32 raw bytes (as for the agent key).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PRIVATE_KEY_NAME = "seal_key.pem"
PUBLIC_KEY_NAME = "seal_key.pub.pem"
_WRAP_INFO = b"weightwarden seal v1 key wrap"
DATA_KEY_BYTES = 32


class SealKeyError(RuntimeError):
    """A key cannot be read, created or used; the message names the file."""


def raw_public(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: X25519PublicKey) -> str:
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def public_pem(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_pem(private: X25519PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def load_public(path: str | os.PathLike[str]) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise SealKeyError(f"{os.fspath(path)}: cannot read an X25519 public key: {error}") from None
    if not isinstance(key, X25519PublicKey):
        raise SealKeyError(f"{os.fspath(path)}: not an X25519 public key")
    return key


def load_private(path: str | os.PathLike[str]) -> X25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except PermissionError:
        raise SealKeyError(f"{os.fspath(path)}: permission denied: the machine's sealing key is readable by the "
                           "agent only (root in system mode)") from None
    except FileNotFoundError:
        raise SealKeyError(f"{os.fspath(path)}: no sealing key on this machine (nothing was sealed with it)") from None
    except OSError as error:
        raise SealKeyError(f"{os.fspath(path)}: cannot read the sealing key: {error.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as error:
        raise SealKeyError(f"{os.fspath(path)}: not a usable private key: {error}") from None
    if not isinstance(key, X25519PrivateKey):
        raise SealKeyError(f"{os.fspath(path)}: not an X25519 private key")
    return key


def machine_public_key(data_dir: str | os.PathLike[str]) -> X25519PublicKey:
    """The machine's public sealing key; the pair is created (private half 0600, O_EXCL) when there is none."""
    directory = Path(data_dir)
    public_path = directory / PUBLIC_KEY_NAME
    private_path = directory / PRIVATE_KEY_NAME
    if public_path.exists():
        return load_public(public_path)
    public = load_private(private_path).public_key() if private_path.exists() else _create(directory)
    _write_public(directory, public)
    return public


def machine_private_key(data_dir: str | os.PathLike[str]) -> X25519PrivateKey:
    """The machine's private sealing key; never created here (unsealing with a fresh key could not work)."""
    path = Path(data_dir) / PRIVATE_KEY_NAME
    key = load_private(path)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)  # someone widened it: the sealing key is for the agent only
    return key


def _create(directory: Path) -> X25519PublicKey:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = X25519PrivateKey.generate()
        fd = os.open(directory / PRIVATE_KEY_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return load_private(directory / PRIVATE_KEY_NAME).public_key()
    except OSError as error:
        raise SealKeyError(f"{directory / PRIVATE_KEY_NAME}: cannot create the machine's sealing key: "
                           f"{error.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem(private))
        out.flush()
        os.fsync(out.fileno())
    return private.public_key()


def _write_public(directory: Path, public: X25519PublicKey) -> None:
    temporary = directory / (PUBLIC_KEY_NAME + ".tmp")
    try:
        temporary.write_bytes(public_pem(public))
        os.chmod(temporary, 0o644)
        os.replace(temporary, directory / PUBLIC_KEY_NAME)
    except OSError:
        pass  # only a convenience for unprivileged sealers: the private half still gives the public one


@dataclass(frozen=True)
class WrappedKey:
    """One recipient's copy of a file's data key, as stored in the sealed file's header."""

    kind: str  # "machine" or "escrow"
    key_id: str
    ephemeral: bytes  # 32 raw bytes of the ephemeral X25519 public key
    nonce: bytes  # 12 bytes
    wrapped: bytes  # 32 bytes of key + 16 bytes of tag

    def to_json(self) -> dict[str, str]:
        encode = base64.b64encode
        return {"kind": self.kind, "key_id": self.key_id, "ephemeral": encode(self.ephemeral).decode("ascii"),
                "nonce": encode(self.nonce).decode("ascii"), "wrapped": encode(self.wrapped).decode("ascii")}

    @classmethod
    def from_json(cls, value: object) -> WrappedKey:
        if not isinstance(value, dict):
            raise ValueError("a wrapped key is not an object")
        try:
            fields = {name: value[name] for name in ("kind", "key_id", "ephemeral", "nonce", "wrapped")}
            if not all(isinstance(text, str) for text in fields.values()):
                raise ValueError("a wrapped key field is not a string")
            key = cls(fields["kind"], fields["key_id"], base64.b64decode(fields["ephemeral"], validate=True),
                      base64.b64decode(fields["nonce"], validate=True),
                      base64.b64decode(fields["wrapped"], validate=True))
        except (KeyError, ValueError) as error:
            raise ValueError(f"malformed wrapped key: {error}") from None
        if len(key.ephemeral) != 32 or len(key.nonce) != 12 or len(key.wrapped) != DATA_KEY_BYTES + 16:
            raise ValueError("malformed wrapped key: wrong field lengths")
        return key


def _kek(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=_WRAP_INFO).derive(shared)


def wrap(data_key: bytes, recipient: X25519PublicKey, kind: str) -> WrappedKey:
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = raw_public(ephemeral.public_key())
    kek = _kek(ephemeral.exchange(recipient), ephemeral_raw, raw_public(recipient))
    nonce = os.urandom(12)
    wrapped = AESGCM(kek).encrypt(nonce, data_key, b"wwseal-wrap:" + kind.encode("ascii"))
    return WrappedKey(kind, key_id(recipient), ephemeral_raw, nonce, wrapped)


def unwrap(keys: list[WrappedKey], private: X25519PrivateKey) -> bytes:
    """The data key from the entry wrapped for `private`; SealKeyError when there is none or it is damaged."""
    public = private.public_key()
    wanted = key_id(public)
    for entry in keys:
        if entry.key_id != wanted:
            continue
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(entry.ephemeral))
            kek = _kek(shared, entry.ephemeral, raw_public(public))
            return AESGCM(kek).decrypt(entry.nonce, entry.wrapped, b"wwseal-wrap:" + entry.kind.encode("ascii"))
        except (InvalidTag, ValueError):
            raise SealKeyError(f"the data key wrapped for key {wanted} ({entry.kind}) fails authentication") from None
    ids = ", ".join(f"{entry.kind} {entry.key_id}" for entry in keys) or "none"
    raise SealKeyError(f"not sealed for key {wanted} (sealed for: {ids})")
