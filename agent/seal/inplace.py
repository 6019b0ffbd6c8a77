"""Seal and unseal a file where it is, crash-safely; verify a sealed file without writing plaintext.

At every moment PATH holds either the complete plain file or a complete sealed file, never neither and never
a partial one: the new form is written to a temporary file in the same folder (`.wwseal-<random>.tmp`,
mode 0600, owned by whoever runs the command, flock-ed while in use), given the original's owner, group
and mode, fsync-ed, checked against the original (a file that changed while we read it is left alone),
renamed over PATH, and the folder is fsync-ed. Extended attributes and ACLs are not carried over.

Leftovers: a process killed half-way leaves its temporary file. Every seal and unseal (and verify) first
removes the stale temporary files of the folder it works in: names exactly `.wwseal-` + 16 hex digits +
`.tmp`, regular files that belong to the user running it and that no live process holds locked. An
unseal killed before its rename can leave (a prefix of) the plaintext in such a file, mode 0600 and owned
by whoever ran the unseal, until the next seal, unseal or verify in that folder.

Symlinks are never followed, FIFOs and devices never opened for real (`safe_open.open_regular`).
Unsealing needs the machine's private key: root in system mode. The policy check that lets an allowed
user unseal through the agent comes with the access policy; this module is the mechanism only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from weightwarden.agent.fingerprint.sha256 import FileChangedError
from weightwarden.agent.safe_open import NotRegularFile, open_regular
from weightwarden.agent.seal.container import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    SealFormatError,
    SealHeader,
    decrypt_stream,
    encrypt_stream,
    is_sealed,
    read_exact,
    read_header,
    write_all,
)
from weightwarden.agent.seal.identity import Describer, PlainIdentity
from weightwarden.agent.seal.keys import SealKeyError, unwrap, wrap

Describe = Callable[[int, int, str], PlainIdentity]

TEMP_PREFIX = ".wwseal-"
TEMP_SUFFIX = ".tmp"
# Tests only: SIGKILL ourselves at a named point ("chunk-N" after N chunks are written, "before-rename",
# "after-rename") to prove crash safety at exactly that moment.
CRASH_ENV = "WEIGHTWARDEN_SEAL_TEST_CRASH_AT"


class SealError(Exception):
    """Sealing, unsealing or verifying one file failed; the message names the file and what failed."""


def seal_file(path: str, recipients: Iterable[tuple[str, X25519PublicKey]], *,
              chunk_size: int = DEFAULT_CHUNK_SIZE, describe: Describe | None = None,
              on_chunk: Callable[[int], None] | None = None) -> SealHeader:
    """Replace the plain file at `path` by its sealed form, the data key wrapped for each (kind, key).

    `describe(fd, size, path)` reads what the plaintext is (its SHA-256, format, model and tensor prints) for
    the header; by default seal.identity's Describer. `on_chunk(index)` runs after each chunk is written.
    """
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise SealError(f"{path}: chunk size {chunk_size} out of range (1 byte to {MAX_CHUNK_SIZE})")
    with _place(path) as (dir_fd, name), _source(path, dir_fd, name) as (fd, info):
        if is_sealed(read_exact(fd, 8, 0)):
            raise SealError(f"{path}: already sealed")
        try:
            plain = (describe or Describer())(fd, info.st_size, path)
        except FileChangedError:
            raise SealError(f"{path}: changed while being read; left as it was") from None
        data_key = os.urandom(32)
        header = SealHeader(chunk_size, info.st_size, plain.sha256, name,
                            tuple(wrap(data_key, key, kind) for kind, key in recipients), os.urandom(8),
                            plain.prints, plain.format, plain.model)
        if not header.keys:
            raise SealError(f"{path}: no key to seal for")
        header_bytes = header.encode()

        def write(target: int) -> None:
            write_all(target, header_bytes)
            encrypt_stream(fd, target, header, header_bytes, data_key, on_chunk=on_chunk or _chunk_hook())

        _replace(path, dir_fd, name, info, fd, write)
        return header


def unseal_file(path: str, private: X25519PrivateKey | Callable[[], X25519PrivateKey], *,
                authorize: Callable[[os.stat_result, SealHeader, str, int], None] | None = None,
                on_chunk: Callable[[int], None] | None = None) -> SealHeader:
    """Replace the sealed file at `path` by its plaintext; on any failure PATH stays sealed.

    `authorize(stat, header, where, fd)` sees the very file that will be unsealed (opened without following
    symlinks; `fd` is it, open for reading), its header and where it really is (the kernel's path of the
    open file: no symbolic link in it) before anything is decrypted; it raises SealError to refuse. The
    agent decides there, so neither a symlinked folder nor a name swapped after the decision can make it
    unseal another file than the one it judged (the rename checks the identity).
    `private` may be a function giving the key, called once the file is known to be sealed and authorized.
    `on_chunk(index)` runs after each chunk is written; a SealError it raises abandons the unseal (the
    temporary file is removed, PATH stays sealed): how the agent stops without finishing a long one.
    """
    with _place(path) as (dir_fd, name), _source(path, dir_fd, name) as (fd, info):
        sealed = _read_sealed_header(path, fd)  # "not a sealed file" comes before any question of keys
        if authorize is not None:
            authorize(info, sealed, _opened_path(fd, path), fd)
        if not isinstance(private, X25519PrivateKey):
            try:
                private = private()
            except SealKeyError as error:
                raise SealError(f"{path}: {error}") from None
        header, header_bytes, data_key = _open_sealed(path, fd, private)

        def write(target: int) -> None:
            decrypt_stream(fd, header, header_bytes, data_key, target, on_chunk=_both(_chunk_hook(), on_chunk))

        _replace(path, dir_fd, name, info, fd, write)
        return header


def verify_file(path: str, private: X25519PrivateKey) -> SealHeader:
    """Check the header, every chunk's tag, the length and the plaintext's SHA-256; writes nothing."""
    with _place(path) as (dir_fd, name), _source(path, dir_fd, name) as (fd, _info):
        header, header_bytes, data_key = _open_sealed(path, fd, private)
        try:
            decrypt_stream(fd, header, header_bytes, data_key)
        except SealFormatError as error:
            raise SealError(f"{path}: {error}") from None
        except OSError as error:
            raise SealError(f"{path}: {error.strerror or error}") from None
        return header


def read_sealed_header(path: str) -> SealHeader:
    with _place(path) as (dir_fd, name), _source(path, dir_fd, name) as (fd, _info):
        return _read_sealed_header(path, fd)


def _read_sealed_header(path: str, fd: int) -> SealHeader:
    try:
        return read_header(fd)[0]
    except SealFormatError as error:
        raise SealError(f"{path}: {error}") from None


def _opened_path(fd: int, path: str) -> str:
    """Where the kernel says the open file is (Linux /proc); the absolute given path elsewhere."""
    try:
        where = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.abspath(path)
    return where if where.startswith("/") and not where.endswith(" (deleted)") else os.path.abspath(path)


def _open_sealed(path: str, fd: int, private: X25519PrivateKey) -> tuple[SealHeader, bytes, bytes]:
    try:
        header, header_bytes = read_header(fd)
        return header, header_bytes, unwrap(list(header.keys), private)
    except (SealFormatError, SealKeyError) as error:
        raise SealError(f"{path}: {error}") from None


@contextmanager
def _place(path: str) -> Iterator[tuple[int, str]]:
    """The folder of `path` (an open fd, after its stale temporary files are removed) and the file's name."""
    directory, name = os.path.split(path)
    if not name or name in (".", ".."):
        raise SealError(f"{path}: not a file name")
    try:
        dir_fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise SealError(f"{path}: cannot open its folder: {error.strerror}") from None
    try:
        remove_stale_temporaries(dir_fd)
        yield dir_fd, name
    finally:
        os.close(dir_fd)


@contextmanager
def _source(path: str, dir_fd: int, name: str) -> Iterator[tuple[int, os.stat_result]]:
    try:
        fd, info = open_regular(name, dir_fd=dir_fd)
    except NotRegularFile as error:
        raise SealError(f"{path}: {error.strerror}; only regular files are sealed") from None
    except OSError as error:
        raise SealError(f"{path}: {error.strerror or error}") from None
    try:
        yield fd, info
    finally:
        os.close(fd)


def _replace(path: str, dir_fd: int, name: str, before: os.stat_result, source: int,
             write: Callable[[int], None]) -> None:
    temporary, target = _create_temporary(path, dir_fd)
    try:
        try:
            write(target)
            os.fchown(target, before.st_uid, before.st_gid)
            os.fchmod(target, stat.S_IMODE(before.st_mode))  # after chown, which clears set-id bits
            os.fsync(target)
        except SealFormatError as error:
            raise SealError(f"{path}: {error}; left as it was") from None
        except OSError as error:
            raise SealError(f"{path}: {error.strerror or error}; left as it was") from None
        try:
            now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as error:
            raise SealError(f"{path}: {error.strerror}; left as it was") from None
        if _identity(now) != _identity(before) or _identity(os.fstat(source)) != _identity(before):
            raise SealError(f"{path}: changed while being processed; left as it was")
        _crash_point("before-rename")
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        temporary = ""
        _crash_point("after-rename")
        os.fsync(dir_fd)
    finally:
        os.close(target)  # closing drops the lock only now, after the rename
        if temporary:
            _unlink_quietly(temporary, dir_fd)


def _identity(info: os.stat_result) -> tuple[int, int, int, int, int]:
    """What changes when anyone writes to, truncates or replaces the file (ctime cannot be set back)."""
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _create_temporary(path: str, dir_fd: int) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _attempt in range(10):
        name = f"{TEMP_PREFIX}{os.urandom(8).hex()}{TEMP_SUFFIX}"
        try:
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        except OSError as error:
            raise SealError(f"{path}: cannot write in its folder: {error.strerror}; left as it was") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        return name, fd
    raise SealError(f"{path}: cannot create a temporary file in its folder")


def remove_stale_in(folder: str) -> list[str]:
    """remove_stale_temporaries for a folder named by path ([] when it cannot be opened)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        return remove_stale_temporaries(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temporaries(dir_fd: int) -> list[str]:
    """Remove this user's `.wwseal-*.tmp` files in the folder that no live process holds; their names."""
    removed: list[str] = []
    try:
        names = os.listdir(dir_fd)
    except OSError:
        return removed
    for name in names:
        if not _is_temporary_name(name):
            continue
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a running seal or unseal: not stale
            current = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (current.st_dev, current.st_ino) == (info.st_dev, info.st_ino):
                os.unlink(name, dir_fd=dir_fd)
                removed.append(name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _is_temporary_name(name: str) -> bool:
    """Exactly the names `_create_temporary` makes: `.wwseal-` + 16 hex digits + `.tmp`."""
    middle = name[len(TEMP_PREFIX):-len(TEMP_SUFFIX)]
    return (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX) and len(middle) == 16
            and all(c in "0123456789abcdef" for c in middle))


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError as error:
        if error.errno != errno.ENOENT:
            raise


def _both(first: Callable[[int], None] | None, second: Callable[[int], None] | None) -> Callable[[int], None] | None:
    if first is None or second is None:
        return first or second

    def both(index: int) -> None:
        first(index)
        second(index)

    return both


def _chunk_hook() -> _ChunkHook | None:
    wanted = os.environ.get(CRASH_ENV, "")
    return _ChunkHook(int(wanted[6:])) if wanted.startswith("chunk-") else None


class _ChunkHook:
    def __init__(self, after: int) -> None:
        self.after = after

    def __call__(self, index: int) -> None:
        if index + 1 == self.after:
            os.kill(os.getpid(), signal.SIGKILL)


def _crash_point(label: str) -> None:
    if os.environ.get(CRASH_ENV) == label:
        os.kill(os.getpid(), signal.SIGKILL)
