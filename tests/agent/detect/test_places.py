"""Where a copy landed: the mount's kind first, then the temporary folders, else local."""

from __future__ import annotations

from pathlib import Path

from weightwarden.agent.detect.places import destination_kind, temporary_roots
from weightwarden.agent.sensors.mounts import Mount


def test_kinds_of_places(tmp_path: Path) -> None:
    stick, scratch, home = tmp_path / "media" / "USB", tmp_path / "tmp", tmp_path / "home"
    for folder in (stick, scratch / "USB", home):
        folder.mkdir(parents=True)
    mounts = {str(stick): Mount(str(stick), "vfat", "/dev/sdb1", "rw", "removable"),
              str(scratch / "USB"): Mount(str(scratch / "USB"), "vfat", "/dev/sdc1", "rw", "removable")}
    assert destination_kind(str(stick / "a.safetensors"), mounts=mounts, temporary=[str(scratch)]) == "removable"
    assert destination_kind(str(scratch / "a.safetensors"), mounts=mounts, temporary=[str(scratch)]) == "temporary"
    # A stick mounted inside a temporary folder says more than the folder.
    assert destination_kind(str(scratch / "USB" / "a.safetensors"), mounts=mounts,
                            temporary=[str(scratch)]) == "removable"
    assert destination_kind(str(home / "a.safetensors"), mounts=mounts, temporary=[str(scratch)]) == "local"
    (home / "link").symlink_to(scratch)  # resolved first: a link into /tmp is a temporary place
    assert destination_kind(str(home / "link" / "a.safetensors"), mounts=mounts,
                            temporary=[str(scratch)]) == "temporary"
    assert destination_kind(str(home / "Dropbox" / "a.safetensors"), mounts=mounts, temporary=[]) == "cloud-sync"


def test_this_machines_temporary_folders() -> None:
    assert "/tmp" in temporary_roots() or Path("/tmp").resolve().as_posix() in temporary_roots()
    assert destination_kind("/tmp/x/a.safetensors", mounts={}) == "temporary"
