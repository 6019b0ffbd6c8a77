"""Posture findings: weak places and permissions of protected model files, found during scans.

Pure: `findings(facts)` judges what `facts_of(path)` (the only I/O here, a few stat calls) observed. A file
counts as readable by all users only when every folder above it lets others through (o+x): a 0644 model
inside a 0700 home is not exposed. Findings are recorded as `posture-finding` events, not alerts: they
describe a standing risk, not an act.
"""

from __future__ import annotations

import grp
import os
import stat
from dataclasses import dataclass

from weightwarden.agent.events import display_path

BROAD_GROUPS = ("users", "staff", "everyone", "domain users", "plugdev")


@dataclass(frozen=True, slots=True)
class FileFacts:
    path: str  # as shown (the findings' messages)
    mode: int
    group: str | None
    folders_open_to_all: bool  # every ancestor folder grants o+x
    folders_open_to_group: bool  # ... or g+x
    parent_world_writable: bool
    place: str  # removable, network-share, cloud-sync, local, temporary


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    severity: int
    message: str


def findings(facts: FileFacts, broad_groups: tuple[str, ...] = BROAD_GROUPS) -> list[Finding]:
    found: list[Finding] = []
    if facts.mode & stat.S_IROTH and facts.folders_open_to_all:
        found.append(Finding("model-readable-by-all", 4, f"{facts.path} is readable by every user of this machine "
                                                         f"(mode {stat.S_IMODE(facts.mode):o})"))
    elif facts.mode & stat.S_IRGRP and facts.folders_open_to_group and (facts.group or "").lower() in broad_groups:
        found.append(Finding("model-readable-by-broad-group", 3,
                             f"{facts.path} is readable by the broad group {facts.group!r} "
                             f"(mode {stat.S_IMODE(facts.mode):o})"))
    if facts.place == "removable":
        found.append(Finding("model-on-removable-media", 5, f"{facts.path} is on removable media"))
    if facts.parent_world_writable:
        found.append(Finding("model-in-world-writable-folder", 5,
                             f"{facts.path} is in a world-writable folder: anyone can replace or remove it"))
    return found


def facts_of(path: str, place: str) -> FileFacts | None:
    """What the posture checks need, or None when the file is gone."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    try:
        group: str | None = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = None
    open_all = open_group = True
    folder = os.path.dirname(os.path.abspath(path))
    parent_mode = 0
    first = True
    while True:
        try:
            mode = os.stat(folder).st_mode
        except OSError:
            return None
        if first:
            parent_mode, first = mode, False
        open_all = open_all and bool(mode & stat.S_IXOTH)
        open_group = open_group and bool(mode & (stat.S_IXOTH | stat.S_IXGRP))
        up = os.path.dirname(folder)
        if up == folder:
            break
        folder = up
    return FileFacts(display_path(path), info.st_mode, group, open_all, open_group, bool(parent_mode & stat.S_IWOTH),
                     place)
