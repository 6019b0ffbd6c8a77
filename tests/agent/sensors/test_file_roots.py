"""Roots added to and removed from the running file sensor (a mount that appeared or went), on a real
inotify instance (any user), and the room that decides which sensor takes a mount."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.agent.sensors.conftest import Collected
from tests.agent.sensors.test_files import about, after_sentinel, seen
from tests.waiting import wait_for
from weightwarden.agent.pipeline.mount_coverage import MountCoverage
from weightwarden.agent.sensors.files import FileObservation, FileSensor, WatchStarted
from weightwarden.agent.sensors.fs_writes import MarkFallback
from weightwarden.agent.sensors.mounts import Mount, MountObservation

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the inotify reader is Linux only")
def test_a_root_added_while_running_is_watched_then_released(tmp_path: Path, collected: Collected) -> None:
    first, added = tmp_path / "first", tmp_path / "stick"
    for folder in (first, added):
        folder.mkdir()
    (added / "deep").mkdir()  # there before: watched too
    sensor = FileSensor([str(first)], collected.add, collected.add_health)
    sensor.start()
    try:
        sensor.add_root(str(added))
        wait_for(lambda: WatchStarted(str(added), "inotify") in list(collected.items), timeout=15,
                 what="the new root to be watched")
        assert sensor.roots == [str(first), str(added)] and "watching 2 roots" in sensor.status().message
        (added / "deep" / "w.bin").write_bytes(b"w")
        seen(collected, added / "deep" / "w.bin", "closed")
        sensor.remove_root(str(added))
        sensor.remove_root(str(added))  # not ours any more: nothing
        after_sentinel(collected, first)  # the removal is applied before the sentinel's events are read
        (added / "deep" / "later.bin").write_bytes(b"w")
        after_sentinel(collected, first, "sentinel-2")
        assert about(collected, added / "deep" / "later.bin") == []
        assert sensor.roots == [str(first)]
    finally:
        sensor.stop()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def add_root(self, root: str) -> None:
        self.calls.append(("add_root", root))

    def remove_root(self, root: str) -> None:
        self.calls.append(("remove_root", root))

    def add_mount(self, point: str) -> None:
        self.calls.append(("add_mount", point))

    def remove_mount(self, point: str) -> None:
        self.calls.append(("remove_mount", point))


def mount(point: str, kind: str, fstype: str = "ext4") -> Mount:
    return Mount(point, fstype, "/dev/sdb1", "rw", kind)


def test_without_marks_the_inotify_sensor_takes_the_mounts_that_can_carry_a_copy_away() -> None:
    files, rescans = Recorder(), []
    coverage = MountCoverage(files, None, lambda roots, why: rescans.extend(roots), mounts={},
                             watched_roots=["/home/ana"])
    for m in (mount("/media/ana/STICK", "removable"), mount("/srv/share", "network-share", "nfs4"),
              mount("/data", "local"), mount("/mnt/scratch", "local"), mount("/home/ana/remote", "local"),
              mount("/run/user/1000", "temporary", "tmpfs"), mount("/sys/kernel/debug", "local", "debugfs")):
        events = coverage.mount(MountObservation("added", m), NOW)
        assert [e.action for e in events] == ["mount-added"]
    assert files.calls == [("add_root", "/media/ana/STICK"), ("add_root", "/srv/share"),
                           ("add_root", "/mnt/scratch"), ("add_root", "/home/ana/remote")]
    coverage.watch_started(WatchStarted("/media/ana/STICK", "inotify"), NOW)
    coverage.watch_started(WatchStarted("/mnt/scratch", "inotify"), NOW)
    coverage.watch_started(WatchStarted("/home/ana/remote", "inotify"), NOW)
    # a stick, and anything under /mnt: what is on it already is looked at; a local disk elsewhere is not
    assert rescans == ["/media/ana/STICK", "/mnt/scratch"]
    coverage.mount(MountObservation("removed", mount("/media/ana/STICK", "removable")), NOW)
    coverage.mount(MountObservation("removed", mount("/data", "local")), NOW)
    assert files.calls[-1] == ("remove_root", "/media/ana/STICK") and len(files.calls) == 5
    assert "/media/ana/STICK" not in coverage.status().message
    assert "/mnt/scratch (local, ext4, inotify)" in coverage.status().message


def test_with_marks_every_mount_goes_to_them_and_a_fallback_to_inotify() -> None:
    files, marks, rescans = Recorder(), Recorder(), []
    coverage = MountCoverage(files, marks, lambda roots, why: rescans.extend(roots), mounts={"/": mount("/", "local")})
    coverage.mount(MountObservation("added", mount("/media/ana/STICK", "removable")), NOW)
    coverage.mount(MountObservation("added", mount("/home/ana/remote", "network-share", "fuse.sshfs")), NOW)
    assert marks.calls == [("add_mount", "/media/ana/STICK"), ("add_mount", "/home/ana/remote")]
    assert files.calls == []
    coverage.watch_started(WatchStarted("/", "fanotify"), NOW)
    coverage.watch_started(WatchStarted("/media/ana/STICK", "fanotify"), NOW)
    coverage.fallback(MarkFallback("/home/ana/remote", "fuse.sshfs", "FUSE"), NOW)
    assert files.calls == [("add_root", "/home/ana/remote")]
    coverage.watch_started(WatchStarted("/home/ana/remote", "inotify"), NOW)
    assert rescans == ["/media/ana/STICK", "/home/ana/remote"]
    status = coverage.status()
    assert status.method == "fanotify+inotify" and status.message == (
        "3 mounts watched: /home/ana/remote (network-share, fuse.sshfs, inotify), /media/ana/STICK (removable, "
        "ext4, fanotify); 1 other local mounts through filesystem marks")
    coverage.mount(MountObservation("removed", mount("/home/ana/remote", "network-share", "fuse.sshfs")), NOW)
    assert marks.calls[-1] == ("remove_mount", "/home/ana/remote")
    assert files.calls[-1] == ("remove_root", "/home/ana/remote")


def test_observations_keep_the_writer() -> None:
    assert FileObservation("closed", "/x", pid=42).pid == 42 and FileObservation("closed", "/x").pid is None
