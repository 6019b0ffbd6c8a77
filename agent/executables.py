"""What a process runs, whatever it is called: the identity of its executable and of the program it runs.

A process's command name (comm) and argv[0] are whatever the user chose: a copy of curl renamed `python3`,
`exec -a python3 curl`, `/lib64/ld-linux-x86-64.so.2 /usr/bin/curl`. Rules judge a process by what it is:

- the executable as the kernel runs it (/proc/<pid>/exe) and the SHA-256 of its content, read through
  /proc/<pid>/exe while the process lives (the very file it runs, even deleted or replaced since), cached by
  (device, inode, mtime, size) so each executable is hashed once;
- what kind of program the executable is, from its content in the same pass (never from its name): the
  dynamic loader (`ld.so PROGRAM`: then the program it loads is the real program), or an interpreter
  (CPython, bash, dash, perl: then the script it runs is what the process is);
- the real program (the ld.so target, else the executable) with its SHA-256, and for an interpreter the
  script path (relative paths resolved against the process's working directory).

`split_invocation` (pure) tells where the real program's own arguments start in argv, so a command line is
parsed as the program's, not the loader's or the interpreter's.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass

MAX_HASHED = 1 << 30  # bigger executables are not hashed (bounded time on the sensor thread)
_BLOCK = 1 << 20
_OVERLAP = 128  # a marker split across two blocks is still found

# What a file is, by strings only that program carries (all of them must appear). Checked in the hashing pass.
KIND_MARKERS: dict[str, tuple[bytes, ...]] = {
    "ld.so": (b"You have invoked", b"--inhibit-rpath"),  # glibc's rtld usage text
    "python": (b"Py_BytesMain",),  # CPython's main (exported, or imported from libpython)
    "shell": (b"GNU bash, version",),
    "dash": (b"turning off NDELAY mode",),
    "perl": (b"perl_parse",),
}
INTERPRETERS = {"python": "python", "shell": "shell", "dash": "shell", "perl": "perl"}

# ld.so options that take a value (glibc elf/rtld.c), then the program path.
_LDSO_VALUE_OPTIONS = frozenset({"--library-path", "--inhibit-rpath", "--audit", "--preload", "--argv0",
                                 "--glibc-hwcaps-prepend", "--glibc-hwcaps-mask"})
# Interpreter options that take a value: the script is the first operand after the options.
_VALUE_OPTIONS = {
    "python": frozenset({"-W", "-X", "-Q"}),
    "shell": frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}),
    "perl": frozenset({"-I", "-M", "-m", "-x"}),
}
_INLINE = {"python": frozenset({"-c", "-m"}), "shell": frozenset({"-c"}), "perl": frozenset({"-e", "-E"})}


@dataclass(frozen=True, slots=True)
class FileIdentity:
    sha256: str
    kind: str | None  # ld.so | python | shell | dash | perl | None (anything else)


@dataclass(frozen=True, slots=True)
class Identity:
    """What a process is (see the module docstring); fields map to ProcessInfo's of the same names."""

    executable_sha256: str | None = None
    program: str | None = None
    program_sha256: str | None = None
    interpreter: str | None = None  # python | shell | perl
    script: str | None = None


class ExecutableHashes:
    """SHA-256 and kind of executables, cached by (device, inode, mtime_ns, size): each is read once."""

    def __init__(self, limit: int = 4096) -> None:
        self._cache: dict[tuple[int, int, int, int], FileIdentity] = {}
        self._lock = threading.Lock()
        self._limit = limit
        self.hashed = 0  # files actually read (tests: cached means not read again)

    def identify(self, path: str) -> FileIdentity | None:
        """The identity of the file at `path` (symlinks followed; /proc/<pid>/exe works), None if unreadable."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_HASHED:
                return None
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            with self._lock:
                known = self._cache.get(key)
            if known is not None:
                return known
            found = _read_identity(fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        with self._lock:
            if len(self._cache) >= self._limit:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = found
            self.hashed += 1
        return found

    def __call__(self, path: str) -> str | None:
        """The SHA-256 of the file at `path` (the allowlist's lookup)."""
        found = self.identify(path)
        return found.sha256 if found else None


def _read_identity(fd: int) -> FileIdentity:
    digest = hashlib.sha256()
    wanted = {marker for markers in KIND_MARKERS.values() for marker in markers}
    seen: set[bytes] = set()
    tail = b""
    while True:
        block = os.read(fd, _BLOCK)
        if not block:
            break
        digest.update(block)
        window = tail + block
        for marker in wanted - seen:
            if marker in window:
                seen.add(marker)
        tail = block[-_OVERLAP:]
    kind = next((name for name, markers in KIND_MARKERS.items() if all(m in seen for m in markers)), None)
    return FileIdentity(digest.hexdigest(), kind)


def split_invocation(kind: str | None, argv: list[str]) -> tuple[int | None, int]:
    """For a process whose executable is of `kind`: (index in argv of the real program or script, or None
    when there is none: `python -c ...`, `bash -c ...`, a plain program; index where that program's own
    arguments begin). For `python -m module` the module name's index is returned as the program's."""
    if kind == "ld.so":
        index = 1
        while index < len(argv):
            arg = argv[index]
            if arg in _LDSO_VALUE_OPTIONS:
                index += 2
            elif arg.startswith("--"):
                index += 1
            else:
                return index, index + 1
        return None, len(argv)
    language = INTERPRETERS.get(kind or "")
    if language is None:
        return None, 1
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if arg in _INLINE[language]:
            if language == "python" and arg == "-m" and index + 1 < len(argv):
                return index + 1, index + 2
            return None, index + 2
        if arg in _VALUE_OPTIONS[language]:
            index += 2
            continue
        if arg.startswith(("-", "+")) and arg not in ("-", "+"):
            if language == "python" and arg.startswith("-c") and len(arg) > 2:
                return None, index + 1  # -cCODE
            index += 1
            continue
        break
    if index < len(argv) and argv[index] != "-":
        return index, index + 1
    return None, min(index + 1, len(argv))


def identify_process(hashes: ExecutableHashes, pid: int | None, executable: str | None, argv: list[str],
                     cwd: str | None = None) -> Identity:
    """The identity of a process: through /proc/<pid>/exe when it lives, else the executable's path (which
    may have been replaced since: then the hash is of what is there now)."""
    found = hashes.identify(f"/proc/{pid}/exe") if pid is not None else None
    if found is None and executable:
        found = hashes.identify(executable)
    if found is None:
        return Identity(program=executable)
    at, _ = split_invocation(found.kind, argv)
    if found.kind == "ld.so":
        if at is None:
            return Identity(found.sha256, executable, found.sha256)
        program = _absolute(argv[at], cwd)
        loaded = hashes.identify(program)
        if loaded is None:
            return Identity(found.sha256, program)
        # the loaded program may itself be an interpreter (`ld.so /usr/bin/python3 upload.py`)
        inner_at, _ = split_invocation(loaded.kind, argv[at:])
        language = INTERPRETERS.get(loaded.kind or "")
        script = _absolute(argv[at + inner_at], cwd) if language and inner_at is not None else None
        return Identity(found.sha256, program, loaded.sha256, language, script)
    language = INTERPRETERS.get(found.kind or "")
    script = None
    if language is not None and at is not None and not (language == "python" and argv[at - 1:at] == ["-m"]):
        script = _absolute(argv[at], cwd)
    return Identity(found.sha256, executable, found.sha256, language, script)


def _absolute(path: str, cwd: str | None) -> str:
    if os.path.isabs(path) or cwd is None:
        return path
    return os.path.normpath(os.path.join(cwd, path))
