"""A resumable, ordered walk for discovery: every regular file under a root, in one fixed order, from
any file onward.

The order is a depth-first walk with each directory's entries sorted by name, files and folders
interleaved, so "after this file" is well defined: resuming from a cursor (the last file handled) lists only
the directories on the cursor's path again and walks nothing that was already walked. Memory is the
listings of the directories on the current path, never a set of everything seen: loops (bind mounts of an
ancestor) are caught by the ancestors' (device, inode); symlinks are never followed; FIFOs, sockets and
devices are never opened (they are not regular files, and the examiner opens with O_NONBLOCK anyway).
A directory that cannot be listed, or vanishes, is counted and skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

MAX_EXAMPLES = 20  # "not covered" examples kept per pass


@dataclass
class WalkTally:
    directories: int = 0
    symlinks_skipped: int = 0
    special_skipped: int = 0
    excluded_dirs: int = 0
    loops_avoided: int = 0
    mounts_skipped: int = 0
    unreadable: int = 0
    not_covered: list[str] = field(default_factory=list)  # "path: reason", the first MAX_EXAMPLES

    def note(self, path: str, reason: str) -> None:
        if len(self.not_covered) < MAX_EXAMPLES:
            self.not_covered.append(f"{path}: {reason}")


def walk_from(root: str, after: str | None, *, tally: WalkTally,
              skip_mount: Callable[[str], str | None] = lambda _p: None,
              skip_dir: Callable[[str], bool] = lambda _p: False,
              excluded_names: frozenset[str] = frozenset()) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of every regular file under `root` that comes after the file `after` in walk order
    (all of them when `after` is None or not under `root`)."""
    try:
        info = os.stat(root)  # a root may be a symlink the configuration named; nothing below is followed
    except OSError as error:
        tally.unreadable += 1
        tally.note(root, error.strerror or str(error))
        return
    if stat.S_ISREG(info.st_mode):
        if after != root:
            yield root, info
        return
    if not stat.S_ISDIR(info.st_mode):
        tally.special_skipped += 1
        return
    resume = _components(root, after)
    yield from _walk(root, info, resume, tally, skip_mount, skip_dir, excluded_names)


def _components(root: str, after: str | None) -> list[str]:
    if after is None:
        return []
    prefix = root.rstrip("/") + "/"
    if not after.startswith(prefix):
        return []
    return [part for part in after[len(prefix):].split("/") if part]


def _walk(root: str, root_info: os.stat_result, resume: list[str], tally: WalkTally,
          skip_mount: Callable[[str], str | None], skip_dir: Callable[[str], bool],
          excluded_names: frozenset[str]) -> Iterator[tuple[str, os.stat_result]]:
    # One frame per directory on the current path: (path, sorted names, next index, identity, resume rest).
    ancestors: set[tuple[int, int]] = set()
    frames: list[tuple[str, list[str], int, tuple[int, int], list[str]]] = []

    def enter(path: str, info: os.stat_result, rest: list[str]) -> None:
        identity = (info.st_dev, info.st_ino)
        if identity in ancestors:
            tally.loops_avoided += 1
            return
        try:
            names = sorted(os.listdir(path))
        except OSError as error:  # unreadable, vanished mid-pass, not a directory any more
            tally.unreadable += 1
            tally.note(path, error.strerror or str(error))
            return
        tally.directories += 1
        start = 0
        if rest:  # resuming: skip the names before the cursor's component at this level
            while start < len(names) and names[start] < rest[0]:
                start += 1
        ancestors.add(identity)
        frames.append((path, names, start, identity, rest))

    enter(root, root_info, resume)
    while frames:
        path, names, index, identity, rest = frames[-1]
        if index >= len(names):
            frames.pop()
            ancestors.discard(identity)
            continue
        name = names[index]
        frames[-1] = (path, names, index + 1, identity, rest)
        on_cursor = bool(rest) and name == rest[0]
        child = os.path.join(path, name)
        reason = skip_mount(child)
        if reason is not None:
            tally.mounts_skipped += 1
            tally.note(child, reason)
            continue
        try:
            info = os.stat(child, follow_symlinks=False)
        except OSError as error:  # vanished between listing and stat, or no permission
            if error.errno != 2:
                tally.unreadable += 1
                tally.note(child, error.strerror or str(error))
            continue
        mode = info.st_mode
        if stat.S_ISREG(mode):
            if on_cursor and len(rest) == 1:
                continue  # the cursor's own file: handled before the stop
            yield child, info
        elif stat.S_ISDIR(mode):
            if name in excluded_names or skip_dir(child):
                tally.excluded_dirs += 1
            else:
                enter(child, info, rest[1:] if on_cursor else [])
        elif stat.S_ISLNK(mode):
            tally.symlinks_skipped += 1
        else:
            tally.special_skipped += 1
