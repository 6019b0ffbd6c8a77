"""The public prints an administrator imported (`weightwarden prints import`), as the agent sees them.

Imports are files in <data dir>/public-prints/, written only by `prints import` (the data dir is the
agent's own: root's in system mode, so a user cannot declare a private model public). The agent reads the
folder at start and looks again every RECHECK_SECONDS; a file that changed is read again, one that went is
forgotten. A file that no longer reads is logged and the prints it gave before stay in force.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterable

from weightwarden.agent.similarity.public_prints import PrintsFileError, PublicModel, read, write

log = logging.getLogger(__name__)
FOLDER = "public-prints"
SUFFIX = ".jsonl"
RECHECK_SECONDS = 10.0

Stamp = tuple[int, int, int]


def folder(data_dir: str) -> str:
    return os.path.join(data_dir, FOLDER)


def save(data_dir: str, name: str, models: list[PublicModel]) -> str:
    """Write validated models as an import named after `name`; returns the file written."""
    target_dir = folder(data_dir)
    os.makedirs(target_dir, mode=0o755, exist_ok=True)
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(name))[:64] or "prints"
    digest = hashlib.sha256("\n".join(m.model for m in models).encode()).hexdigest()[:12]
    target = os.path.join(target_dir, f"{stem.removesuffix(SUFFIX)}-{digest}{SUFFIX}")
    handle, temporary = tempfile.mkstemp(dir=target_dir, prefix=".import-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            write(out, models)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


def load(path: str) -> list[PublicModel]:
    with open(path, "rb") as source:
        return read(source, path)


class ImportedPrints:
    """What changed in the imports folder since the last look: {file: models} read anew, files gone."""

    def __init__(self, data_dir: str) -> None:
        self._folder = folder(data_dir)
        self._stamps: dict[str, Stamp] = {}
        self._checked = float("-inf")

    def changes(self, *, force: bool = False) -> tuple[dict[str, list[PublicModel]], list[str]]:
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_SECONDS:
            return {}, []
        self._checked = now
        present = dict(_stamps(self._folder))
        gone = [path for path in self._stamps if path not in present]
        for path in gone:
            del self._stamps[path]
        fresh: dict[str, list[PublicModel]] = {}
        for path, stamp in present.items():
            if self._stamps.get(path) == stamp:
                continue
            try:
                fresh[path] = load(path)
            except (OSError, PrintsFileError) as error:
                log.error("public prints not loaded (the ones read before stay in force): %s", error)
            self._stamps[path] = stamp
        return fresh, gone


def _stamps(directory: str) -> Iterable[tuple[str, Stamp]]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_file(follow_symlinks=False):
                yield entry.path, (info.st_mtime_ns, info.st_size, info.st_ino)
