"""Git LFS: a repository's object store and its working tree hold the same model twice, and that is one model.

git-lfs keeps each large file's content in `<repo>/.git/lfs/objects/<aa>/<bb>/<oid>` (the oid is the
content's SHA-256, `aa` and `bb` its first two pairs of hex digits; downloads land in `<repo>/.git/lfs/tmp/`
first) and writes the file a commit names into the working tree: a checkout (clone, pull, checkout) makes
the working-tree file from the object, `git add` makes the object from the working-tree file. The same bytes
at two paths of one repository, in the same place: neither is a copy of the other, the way a Hugging Face
snapshot is not a copy of its blob (placement.py; there a symlink, here a second file). The model is named
after the working-tree file, the one a person knows; the object alone is named after its repository.

Only an object and a working-tree file of the *same* repository are paired: a protected model copied from
elsewhere into a repository (its working tree or its object store) is still a copy of that model.
"""

from __future__ import annotations

import os
import re

from weightwarden.agent.events import ModelFile

_STORE = re.compile(r"^(.+)/\.git/lfs/(?:objects/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})|tmp/[^/]+)$")


def lfs_object(path: str) -> tuple[str, str | None] | None:
    """(the repository's working tree, the oid: None for a download not yet in place) when `path` is in a
    repository's LFS store, else None."""
    found = _STORE.match(path.replace(os.sep, "/"))
    if found is None:
        return None
    oid = found.group(4)
    if oid is not None and (found.group(2), found.group(3)) != (oid[:2], oid[2:4]):
        return None  # not where git-lfs puts that oid
    return found.group(1), oid


def in_working_tree(path: str, repository: str) -> bool:
    normalized = path.replace(os.sep, "/")
    return normalized.startswith(repository + "/") and not normalized.startswith(repository + "/.git/")


def checkout_pair(a: ModelFile, b: ModelFile) -> bool:
    """Whether one of two files with the same bytes is an LFS object of a repository and the other a file of
    that repository's working tree (its checkout). An object whose oid is not the known SHA-256 of either
    file is not paired: git-lfs names objects by their content."""
    for stored, other in ((a, b), (b, a)):
        found = lfs_object(stored.path)
        if found is None or lfs_object(other.path) is not None:
            continue
        repository, oid = found
        if not in_working_tree(other.path, repository):
            continue
        if oid is not None and any(f.sha256 and f.sha256 != oid for f in (stored, other)):
            continue
        return True
    return False


def repository_name(path: str) -> str | None:
    """The name an LFS object goes by before its checkout is known: its repository's folder name."""
    found = lfs_object(path)
    return os.path.basename(found[0]) if found is not None else None
