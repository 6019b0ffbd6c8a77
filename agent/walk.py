"""Walk directory trees the way a security tool must: never follow a symlink, never open a FIFO or device,
never loop, never stop on one bad entry. Problems come back as ScanIssue values, in order, with the rest.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from weightwarden.agent.events import display_path


@dataclass(frozen=True, slots=True)
class ScanIssue:
    """Something under a scanned root we could not look at, and why (shown to the user, never fatal)."""

    path: str
    reason: str
    changing: bool = False  # it changed while we read it: worth a second look once it has settled
    gone: bool = False  # it was deleted before we could read it (a lock or temporary file): nothing to record

    @classmethod
    def of(cls, path: str | bytes, error: BaseException | str, *, changing: bool = False,
           gone: bool = False) -> ScanIssue:
        reason = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
        return cls(display_path(path), reason, changing, gone)


@dataclass
class WalkCounts:
    directories: int = 0
    symlinks_skipped: int = 0
    special_skipped: int = 0
    excluded_dirs: int = 0
    loops_avoided: int = 0
    skipped: list[str] = field(default_factory=list)


def walk_files(
    roots: Iterable[str], *, exclude_dirs: Iterable[str] = (), counts: WalkCounts | None = None,
) -> Iterator[tuple[str, os.stat_result] | ScanIssue]:
    """Yield (path, lstat) for every regular file under the roots, and a ScanIssue for what fails.

    A root may itself be a symlink (the user named it) or a single file; below a root nothing is followed.
    """
    counts = counts if counts is not None else WalkCounts()
    excluded = set(exclude_dirs)
    visited: set[tuple[int, int]] = set()  # (dev, ino) of directories: guards bind-mount cycles
    for root in roots:
        try:
            info = os.stat(root)  # follows a symlinked root on purpose
        except OSError as error:
            yield ScanIssue.of(root, error)
            continue
        if stat.S_ISREG(info.st_mode):
            yield root, info
            continue
        if not stat.S_ISDIR(info.st_mode):
            counts.special_skipped += 1
            yield ScanIssue.of(root, "not a regular file or directory; skipped")
            continue
        yield from _walk_dir(root, info, excluded, visited, counts)


def _walk_dir(root: str, root_info: os.stat_result, excluded: set[str], visited: set[tuple[int, int]],
              counts: WalkCounts) -> Iterator[tuple[str, os.stat_result] | ScanIssue]:
    stack = [(root, (root_info.st_dev, root_info.st_ino))]
    while stack:
        directory, identity = stack.pop()
        if identity in visited:
            counts.loops_avoided += 1
            continue
        visited.add(identity)
        counts.directories += 1
        try:
            with os.scandir(directory) as entries:
                children = list(entries)
        except OSError as error:
            yield ScanIssue.of(directory, error)
            continue
        subdirs = []
        for entry in sorted(children, key=lambda e: e.name):
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as error:  # vanished between listing and stat, or no permission
                yield ScanIssue.of(entry.path, error)
                continue
            mode = info.st_mode
            if stat.S_ISREG(mode):
                yield entry.path, info
            elif stat.S_ISDIR(mode):
                if entry.name in excluded:
                    counts.excluded_dirs += 1
                else:
                    subdirs.append((entry.path, (info.st_dev, info.st_ino)))
            elif stat.S_ISLNK(mode):
                counts.symlinks_skipped += 1
            else:  # FIFO, socket, device: never opened, so never blocks
                counts.special_skipped += 1
        stack.extend(reversed(subdirs))
