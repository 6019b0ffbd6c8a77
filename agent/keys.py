"""The agent's Ed25519 key pair: created on first start, private half readable by the agent only.

The key signs chain checkpoints (`store.chain`). The public half is written beside it (world-readable)
so `weightwarden verify` can check signatures without privileges, and `weightwarden keys export` hands
it to the SIEM side. The key id is the first 16 hex digits of SHA-256 over the raw public key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_KEY_NAME = "agent_key.pem"
PUBLIC_KEY_NAME = "agent_key.pub.pem"


class AgentKeyError(RuntimeError):
    """The key file exists but cannot be used (unreadable, wrong type, too open)."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise AgentKeyError(f"{path}: cannot read public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AgentKeyError(f"{path}: not an Ed25519 public key")
    return key


def verify_signature(public: Ed25519PublicKey, signature_b64: str, message: bytes) -> bool:
    try:
        public.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class AgentKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def id(self) -> str:
        return key_id(self.public)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode("ascii")

    @classmethod
    def load_or_create(cls, data_dir: str | os.PathLike[str]) -> AgentKey:
        """The key in `data_dir`, created (mode 0600, O_EXCL) when there is none yet."""
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / PRIVATE_KEY_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls._create(path)
        except OSError as error:
            raise AgentKeyError(f"{path}: cannot read the agent key: {error.strerror}") from None
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except ValueError as error:
            raise AgentKeyError(f"{path}: not a usable private key: {error}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise AgentKeyError(f"{path}: not an Ed25519 private key")
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)  # someone widened it: the agent's key is for the agent only
        key = cls(private)
        key._write_public(directory)
        return key

    @classmethod
    def _create(cls, path: Path) -> AgentKey:
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:  # another process won the race: use its key
            return cls.load_or_create(path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        key = cls(private)
        key._write_public(path.parent)
        return key

    def _write_public(self, directory: Path) -> None:
        target = directory / PUBLIC_KEY_NAME
        text = public_pem(self.public)
        try:
            if target.read_text(encoding="ascii") == text:
                return
        except (OSError, UnicodeDecodeError):
            pass
        temporary = directory / (PUBLIC_KEY_NAME + ".tmp")
        temporary.write_text(text, encoding="ascii")
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
