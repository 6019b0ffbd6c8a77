"""Canary models: decoy checkpoints that nobody has a reason to open.

`plant(path)` writes a valid safetensors file shaped like a small Llama-style checkpoint (embeddings,
attention and MLP projections, norms, lm_head) with float16 values drawn fresh from os.urandom, so every
planted canary is unique per host and per plant, and nothing in it says "decoy". The safetensors format is
written here (8-byte little-endian header length, JSON header padded to 8 bytes, raw little-endian data),
since the agent does not depend on the safetensors library.

The registry (canaries.json in the data folder, one canary per line, mode 0600: whoever can read it knows
which models are decoys) records each canary's path, SHA-256, quick fingerprint, (device, inode) and owner.
A canary is the file, not the name: the agent knows it by (device, inode) first, so a canary renamed or
moved within its filesystem still counts; by its path second, only while the file there is the one
planted (a new file put at that path is not a canary unless it has the canary's bytes); and by content, so
a copy of it (same SHA-256 or quick fingerprint) counts too (`CanaryIndex`). The detection rule
`canary-model-accessed` fires on any open of one by anything but the agent.

A canary planted with sudo belongs to the person who ran sudo (SUDO_UID/SUDO_GID), not to root: a decoy
owned by root among someone's own models would stand out. `locate` says where each canary is now, from the
file at its recorded path and the agent's inventory, which follows moves.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import secrets
import stat
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from weightwarden.agent.events import FileInfo, ModelFile, display_path, format_time, utc_now
from weightwarden.agent.fingerprint.quick import quick_fingerprint

log = logging.getLogger(__name__)

REGISTRY = "canaries.json"
SIZES = {  # hidden size, layers, vocabulary: about 20 MB, 90 MB and 300 MB
    "small": (256, 2, 32000),
    "medium": (512, 4, 32000),
    "large": (1024, 6, 32000),
}
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Canary:
    path: str  # where it was planted, or where `locate` last found it
    sha256: str
    size: int
    planted: str
    device: int | None = None  # None: planted by a version that did not record its identity
    inode: int | None = None
    quick_fingerprint: str | None = None
    owner: str | None = None  # the user who owns the file: the one who ran sudo, not root
    owner_uid: int | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    uid: int
    gid: int
    name: str
    via_sudo: bool = False


class RegistryError(Exception):
    """The registry cannot be read as it is; it is left untouched."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}{f':{line}' if line else ''}: {message}")


def _layout(hidden: int, layers: int, vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    mlp = hidden * 8 // 3 // 64 * 64 or 64
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        prefix = f"model.layers.{i}"
        shapes += [(f"{prefix}.input_layernorm.weight", (hidden,)),
                   (f"{prefix}.self_attn.q_proj.weight", (hidden, hidden)),
                   (f"{prefix}.self_attn.k_proj.weight", (hidden, hidden)),
                   (f"{prefix}.self_attn.v_proj.weight", (hidden, hidden)),
                   (f"{prefix}.self_attn.o_proj.weight", (hidden, hidden)),
                   (f"{prefix}.post_attention_layernorm.weight", (hidden,)),
                   (f"{prefix}.mlp.gate_proj.weight", (mlp, hidden)),
                   (f"{prefix}.mlp.up_proj.weight", (mlp, hidden)),
                   (f"{prefix}.mlp.down_proj.weight", (hidden, mlp))]
    return [*shapes, ("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]


@dataclass(frozen=True, slots=True)
class _Written:
    sha256: str
    quick_fingerprint: str
    size: int
    device: int
    inode: int


def write_decoy(path: str, size: str = "small") -> str:
    """Write the decoy safetensors file at `path` (exclusively: never over an existing file); its SHA-256."""
    return _write(path, size, None).sha256


def _write(path: str, size: str, owner: Owner | None) -> _Written:
    hidden, layers, vocab = SIZES[size]
    layout = _layout(hidden, layers, vocab)
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in layout:
        length = int(np.prod(shape)) * 2
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + length]}
        offset += length
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    rng = np.random.default_rng(int.from_bytes(secrets.token_bytes(16), "little"))
    digest = hashlib.sha256()
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "r+b") as handle:
        if owner is not None:  # on the descriptor: the name may be swapped under us, the file cannot
            os.fchown(fd, owner.uid, owner.gid)
        for chunk in (struct.pack("<Q", len(text)), text):
            handle.write(chunk)
            digest.update(chunk)
        for name, shape in layout:
            if name.endswith("norm.weight"):
                values = (1.0 + rng.normal(0, 0.02, shape)).astype("<f2")
            else:
                values = rng.normal(0, 0.02, shape).astype("<f2")
            data = values.tobytes()
            handle.write(data)
            digest.update(data)
        handle.flush()
        info = os.fstat(fd)
        return _Written(digest.hexdigest(), quick_fingerprint(fd, info.st_size), info.st_size, info.st_dev,
                        info.st_ino)


def invoking_user(environ: Mapping[str, str] | None = None) -> Owner:
    """Who plants: the person who ran sudo when we run as root under sudo, else whoever runs us."""
    env = os.environ if environ is None else environ
    if os.geteuid() == 0 and env.get("SUDO_UID", "").isdigit():
        uid = int(env["SUDO_UID"])
        try:
            entry: pwd.struct_passwd | None = pwd.getpwuid(uid)
        except KeyError:
            entry = None
        gid = int(env["SUDO_GID"]) if env.get("SUDO_GID", "").isdigit() else (entry.pw_gid if entry else uid)
        name = entry.pw_name if entry else env.get("SUDO_USER") or str(uid)
        return Owner(uid, gid, name, via_sudo=True)
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return Owner(uid, os.getegid(), name)


def plant(path: str, data_dir: str, size: str = "small", owner: Owner | None = None) -> Canary:
    """Write a decoy at `path` (a file, or model.safetensors inside a folder), owned by `owner` (default: the
    caller), and register it. Raises RegistryError, before writing anything, when the registry is unreadable."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        target = os.path.join(target, "model.safetensors")
    with _locked(data_dir):
        entries = load_registry(data_dir)  # a broken registry stops us here: nothing planted, nothing lost
        _make_folders(os.path.dirname(target), owner)
        chown = owner if owner is not None and (owner.uid, owner.gid) != (os.geteuid(), os.getegid()) else None
        written = _write(target, size, chown)
        who = owner or invoking_user({})
        canary = Canary(os.path.realpath(target), written.sha256, written.size, format_time(utc_now()),
                        written.device, written.inode, written.quick_fingerprint, who.name, who.uid)
        _save_registry(data_dir, [*(c for c in entries if c.path != canary.path), canary])
    return canary


def _make_folders(folder: str, owner: Owner | None) -> None:
    """Create `folder` and missing parents, owned like the canary (a root-owned folder would stand out)."""
    missing = []
    while folder and not os.path.lexists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for created in reversed(missing):
        os.makedirs(created, exist_ok=True)
        if owner is not None and os.geteuid() == 0:
            os.chown(created, owner.uid, owner.gid, follow_symlinks=False)


# --------------------------------------------------------------------------- the registry file

def load_registry(data_dir: str) -> list[Canary]:
    """The registered canaries ([] when there is no registry); RegistryError names the file and line of
    what cannot be read."""
    file = os.path.join(data_dir, REGISTRY)
    try:
        with open(file, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise RegistryError(file, None, f"cannot read: {getattr(error, 'strerror', None) or error}") from None
    if not text.strip():
        return []
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise RegistryError(file, error.lineno, f"not valid JSON: {error.msg} (column {error.colno})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("canaries"), list):
        raise RegistryError(file, 1, 'expected an object {"canaries": [...]}')
    lines = _entry_lines(text)
    canaries = []
    for index, entry in enumerate(raw["canaries"]):
        line = lines[index] if index < len(lines) else None
        try:
            canaries.append(_canary_from(entry))
        except ValueError as error:
            raise RegistryError(file, line, f"canary {index + 1}: {error}") from None
    return canaries


def _canary_from(entry: Any) -> Canary:
    if not isinstance(entry, dict):
        raise ValueError("expected an object")

    def field(name: str, kind: type, optional: bool = False) -> Any:
        value = entry.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{name} is {'missing' if value is None else repr(value)}, expected {kind.__name__}")
        return value

    sha256 = field("sha256", str)
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256 {sha256!r} is not 64 lowercase hex digits")
    return Canary(field("path", str), sha256, field("size", int), field("planted", str),
                  field("device", int, True), field("inode", int, True), field("quick_fingerprint", str, True),
                  field("owner", str, True), field("owner_uid", int, True))


def _entry_lines(text: str) -> list[int]:
    """The line each entry of the "canaries" list starts on (text already parsed as JSON)."""
    found = re.search(r'"canaries"\s*:\s*\[', text)
    if found is None:
        return []
    decoder, at = json.JSONDecoder(), found.end()
    lines: list[int] = []
    while True:
        while at < len(text) and text[at] in " \t\r\n,":
            at += 1
        if at >= len(text) or text[at] == "]":
            return lines
        try:
            _, end = decoder.raw_decode(text, at)
        except ValueError:
            return lines
        lines.append(text.count("\n", 0, at) + 1)
        at = end


def _save_registry(data_dir: str, canaries: list[Canary]) -> None:
    os.makedirs(data_dir, exist_ok=True)
    final = os.path.join(data_dir, REGISTRY)
    temporary = final + f".{os.getpid()}.tmp"
    entries = ",\n".join(json.dumps({k: v for k, v in asdict(c).items() if v is not None}) for c in canaries)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write('{"canaries": [\n' + entries + ("\n" if entries else "") + "]}\n")
    os.replace(temporary, final)


@contextmanager
def _locked(data_dir: str) -> Iterator[None]:
    """One writer of the registry at a time (two plants, or a plant and a `canary list` that relocates)."""
    os.makedirs(data_dir, exist_ok=True)
    fd = os.open(os.path.join(data_dir, REGISTRY + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- where each canary is now

@dataclass(frozen=True, slots=True)
class Location:
    canary: Canary
    state: str  # "in place", "moved", "missing", "replaced"
    path: str | None  # where it is now (None: not found)


def locate(canaries: Iterable[Canary], inventory: Iterable[ModelFile] = ()) -> list[Location]:
    """Where each canary is now: at its recorded path if the file there is still it; else wherever the
    inventory (which follows moves) has its (device, inode); else "replaced" when another file holds its
    path, or "missing"."""
    by_inode: dict[tuple[int | None, int | None], ModelFile] = {
        (m.device, m.inode): m for m in inventory if m.device is not None and m.inode is not None}
    found = []
    for canary in canaries:
        try:
            info: os.stat_result | None = os.stat(canary.path, follow_symlinks=False)
        except OSError:
            info = None
        here = info is not None and stat.S_ISREG(info.st_mode) and (
            canary.inode is None or (info.st_dev, info.st_ino) == (canary.device, canary.inode)) and _same_bytes(
            canary.path, canary)
        if here:
            found.append(Location(canary, "in place", canary.path))
            continue
        moved = by_inode.get((canary.device, canary.inode)) if canary.inode is not None else None
        if moved is not None and _still_there(moved.path, canary):
            found.append(Location(canary, "moved", moved.path))
        else:
            found.append(Location(canary, "replaced" if info is not None else "missing", None))
    return found


def _still_there(path: str, canary: Canary) -> bool:
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == (canary.device, canary.inode) and _same_bytes(path, canary)


def _same_bytes(path: str, canary: Canary) -> bool:
    """The file at `path` still has the canary's size and quick fingerprint (inode numbers are reused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
        return size == canary.size and (canary.quick_fingerprint is None
                                        or quick_fingerprint(fd, size) == canary.quick_fingerprint)
    except OSError:
        return False
    finally:
        os.close(fd)


def relocate(data_dir: str, moves: Mapping[str, str]) -> None:
    """Record the new path of moved canaries (planted path -> where `locate` found it)."""
    if not moves:
        return
    with _locked(data_dir):
        entries = load_registry(data_dir)
        _save_registry(data_dir, [replace(c, path=moves.get(c.path, c.path)) for c in entries])


# --------------------------------------------------------------------------- recognising a canary

class CanaryIndex:
    """The registered canaries, indexed the ways an event can name one (pure: no file system access)."""

    def __init__(self, canaries: Iterable[Canary] = ()) -> None:
        self.canaries = tuple(canaries)
        self._by_inode = {(c.device, c.inode): c for c in self.canaries if c.device is not None and c.inode is not None}
        # as events show paths: a decoy whose name is not UTF-8 still matches its events
        self._by_path = {display_path(c.path): c for c in self.canaries}
        self._by_sha256 = {c.sha256: c for c in self.canaries}
        self._by_quick = {c.quick_fingerprint: c for c in self.canaries if c.quick_fingerprint}

    def match(self, file: FileInfo | None) -> Canary | None:
        """The canary this file is, or is a copy of; None when it is none."""
        if file is None:
            return None
        if file.device is not None and file.inode is not None:
            known = self._by_inode.get((file.device, file.inode))
            # not if its content says otherwise: inode numbers are reused (a file written right after the
            # canary was deleted often gets its number)
            if known is not None and not _other_content(file, known):
                return known
        at_path = self._by_path.get(file.path) if file.path else None
        if at_path is not None and not _other_content(file, at_path) and (
                at_path.inode is None or file.inode is None
                or (file.device, file.inode) == (at_path.device, at_path.inode)):
            return at_path
        # another file (a copy, or one put in the canary's place) is one only with the canary's bytes
        if file.sha256 and file.sha256 in self._by_sha256:
            return self._by_sha256[file.sha256]
        return self._by_quick.get(file.quick_fingerprint) if file.quick_fingerprint else None

    def matches(self, file: FileInfo | None) -> bool:
        return self.match(file) is not None

    def __len__(self) -> int:
        return len(self.canaries)


def _other_content(file: FileInfo, canary: Canary) -> bool:
    """The event's file is known to hold other bytes than the canary (size or a fingerprint differs)."""
    return ((file.size is not None and file.size != canary.size)
            or bool(file.sha256 and file.sha256 != canary.sha256)
            or bool(file.quick_fingerprint and canary.quick_fingerprint
                    and file.quick_fingerprint != canary.quick_fingerprint))


class Canaries:
    """The registry as the running agent sees it: a CanaryIndex, re-read when the file changes (a plant
    while the agent runs).

    Detection asks for every event; the registry is looked at (one stat) at most every RECHECK_SECONDS, so
    a canary planted while the agent runs counts within that time (its access marks take a second anyway).
    A registry that cannot be read is logged once and the canaries known before stay in effect.
    """

    RECHECK_SECONDS = 0.5

    def __init__(self, data_dir: str) -> None:
        self._file = os.path.join(data_dir, REGISTRY)
        self._data_dir = data_dir
        self._stamp: tuple[int, int, int] | None = None
        self._index = CanaryIndex()
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> CanaryIndex:
        now = time.monotonic()
        if now - self._checked < self.RECHECK_SECONDS:
            return self._index
        self._checked = now
        try:
            info = os.stat(self._file)
            stamp: tuple[int, int, int] | None = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._index = CanaryIndex(load_registry(self._data_dir)) if stamp else CanaryIndex()
                except RegistryError as error:
                    log.error("canary registry not loaded, the canaries known before still count: %s", error)
            return self._index
