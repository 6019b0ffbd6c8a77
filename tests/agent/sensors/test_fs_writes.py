"""The fs-writes sensor on real filesystems mounted by the test (tmpfs, loop ext4, a bind mount, sshfs):
files written by another, unprivileged process are reported with their path and the writer's pid.

A filesystem mark on / sees every write on this machine (other people's builds included), so every
assertion looks only at paths under the test's own folders and at the pid of the process it started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.sensors.conftest import Collected, wait_for
from tests.agent.sensors.test_mounts import run, sshd  # noqa: F401 - sshd is a fixture used below
from tests.agent.sensors.test_overflow import lowered
from weightwarden.agent.sensors import fs_writes
from weightwarden.agent.sensors.files import FileObservation, WatchStarted
from weightwarden.agent.sensors.fs_writes import FsWriteSensor, FsWritesOverflow, MarkFallback

pytestmark = pytest.mark.root

WRITER = textwrap.dedent("""
    import os, sys
    folder = os.fsencode(sys.argv[1])
    with open(os.path.join(folder, b"weights.bin"), "wb") as f:
        f.write(b"w" * 4096)
    os.rename(os.path.join(folder, b"weights.bin"), os.path.join(folder, b"renamed.bin"))
    with open(os.path.join(folder, b"caf\\xe9-\\xff.bin"), "wb") as f:  # not UTF-8
        f.write(b"x")
    os.mkdir(os.path.join(folder, b"sub"))
    os.rename(os.path.join(folder, b"sub"), os.path.join(folder, b"moved-sub"))
    os.unlink(os.path.join(folder, b"renamed.bin"))
""")


def require_fid() -> None:
    if os.geteuid() != 0:
        pytest.skip("filesystem marks need root")
    why = fs_writes.unavailable()
    if why is not None:
        pytest.skip(f"fs-writes unavailable here: {why}")


def as_nobody(*command: str) -> subprocess.Popen[bytes]:
    """A process of an unprivileged user (nobody), so the writer is not root and not us."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    return subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command])


def write_as_nobody(folder: Path) -> int:
    process = as_nobody(sys.executable, "-c", WRITER, str(folder))
    assert process.wait(timeout=60) == 0
    return process.pid


@pytest.fixture
def public() -> Iterator[Path]:
    """A folder under /tmp every user can reach (pytest's tmp_path is root's alone); mounts made below it
    are unmounted at the end."""
    folder = Path(tempfile.mkdtemp(prefix="ww-fs-writes-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for _ in range(3):  # stacked or nested mounts: innermost first
            points = sorted((line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                             if line.split()[4].startswith(str(folder) + "/")), key=len, reverse=True)
            for point in points:
                run("umount", "-l", point)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def sensor(collected: Collected) -> Iterator[FsWriteSensor]:
    require_fid()
    sensor = FsWriteSensor(collected.add, collected.add_health)
    sensor.start()
    try:
        yield sensor
    finally:
        sensor.stop()


def mount_tmpfs(point: Path) -> None:
    point.mkdir()
    result = run("mount", "-t", "tmpfs", "-o", "size=4m,mode=1777", "wwfsw", str(point))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def mount_ext4(image: Path, point: Path) -> None:
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 (e2fsprogs) is not installed")
    with image.open("wb") as file:
        file.truncate(16 << 20)
    assert run("mkfs.ext4", "-q", "-F", str(image)).returncode == 0
    point.mkdir()
    result = run("mount", "-o", "loop", str(image), str(point))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a loop device here: {result.stderr.strip()}")
    point.chmod(0o1777)


def changes(collected: Collected, folder: Path, pid: int | None = None) -> list[FileObservation]:
    inside = str(folder) + "/"
    return [o for o in list(collected.items) if isinstance(o, FileObservation)
            and (o.path.startswith(inside) or (o.dest_path or "").startswith(inside))
            and (pid is None or o.pid == pid)]


def expected(folder: Path) -> list[FileObservation]:
    def at(name: bytes) -> str:
        return os.fsdecode(os.path.join(os.fsencode(folder), name))

    # creations are not reported: a written file's news is its close, a new directory's is its files'
    return [FileObservation("closed", at(b"weights.bin")),
            FileObservation("moved", at(b"weights.bin"), at(b"renamed.bin")),
            FileObservation("closed", at(b"caf\xe9-\xff.bin")),
            FileObservation("moved", at(b"sub"), at(b"moved-sub"), True),
            FileObservation("deleted", at(b"renamed.bin"))]


def without_pid(observations: list[FileObservation]) -> list[FileObservation]:
    return [FileObservation(o.kind, o.path, o.dest_path, o.is_directory) for o in observations]


def test_writes_by_another_user_on_a_tmpfs_and_a_loop_ext4_come_with_path_and_pid(
        public: Path, collected: Collected) -> None:
    """Mounted before the sensor starts: marked at start. A non-UTF-8 name keeps its bytes."""
    require_fid()
    mount_tmpfs(public / "ram")
    mount_ext4(public / "disk.img", public / "disk")
    sensor = FsWriteSensor(collected.add, collected.add_health)
    sensor.start()
    try:
        marked = {point for f in sensor.filesystems for point in f.mount_points}
        assert {str(public / "ram"), str(public / "disk")} <= marked
        for folder in (public / "ram", public / "disk"):
            pid = write_as_nobody(folder)
            assert pid != os.getpid()
            seen = wait_for(lambda folder=folder: len(changes(collected, folder)) >= 5 and changes(collected, folder),
                            timeout=15, what=f"the writes on {folder}")
            assert without_pid(seen) == expected(folder)
            assert {o.pid for o in seen} == {pid}  # the writer, not the test
            raw = os.fsencode(seen[2].path)
            assert raw == os.fsencode(str(folder)) + b"/caf\xe9-\xff.bin"  # the bytes, exactly
        fstypes = {f.fstype for f in sensor.filesystems if f.resolve_through in (str(public / "ram"),
                                                                                str(public / "disk"))}
        assert fstypes == {"tmpfs", "ext4"}
        status = sensor.status()
        assert status.state == "running" and status.method == "fanotify-fid"
        assert f"{public / 'disk'} (ext4)" in status.message and f"{public / 'ram'} (tmpfs)" in status.message
    finally:
        sensor.stop()


def test_the_agents_own_writes_are_not_reported(sensor: FsWriteSensor, public: Path, collected: Collected) -> None:
    shared = public / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    mine = shared / "mine.bin"
    mine.write_bytes(b"x" * 10)
    pid = write_as_nobody(shared)  # a write by someone else after ours: once it is seen, ours was read too
    wait_for(lambda: changes(collected, shared, pid), timeout=15, what="the other process's writes")
    assert [o for o in changes(collected, shared) if o.path == str(mine)] == []
    assert sensor.ignored_own > 0


def test_a_filesystem_mounted_after_start_is_marked(sensor: FsWriteSensor, public: Path,
                                                    collected: Collected) -> None:
    mount_ext4(public / "stick.img", public / "stick")
    sensor.add_mount(str(public / "stick"))
    wait_for(lambda: [o for o in list(collected.items)
                      if o == WatchStarted(str(public / "stick"), "fanotify")], timeout=15, what="the new mark")
    pid = write_as_nobody(public / "stick")
    seen = wait_for(lambda: len(changes(collected, public / "stick")) >= 5 and changes(collected, public / "stick"),
                    timeout=15, what="the writes on the new filesystem")
    assert without_pid(seen) == expected(public / "stick") and {o.pid for o in seen} == {pid}
    # unmounted: forgotten at the next resync
    assert run("umount", str(public / "stick")).returncode == 0
    sensor.remove_mount(str(public / "stick"))
    wait_for(lambda: all(str(public / "stick") not in f.mount_points for f in sensor.filesystems), timeout=15,
             what="the unmounted filesystem to be forgotten")


def test_a_filesystem_mounted_twice_is_marked_once(sensor: FsWriteSensor, public: Path,
                                                   collected: Collected) -> None:
    mount_tmpfs(public / "ram")
    (public / "again").mkdir()
    assert run("mount", "--bind", str(public / "ram"), str(public / "again")).returncode == 0
    sensor.resync()
    (shared,) = [f for f in sensor.filesystems if str(public / "ram") in f.mount_points]
    assert shared.mount_points == [str(public / "ram"), str(public / "again")]
    assert shared.resolve_through == str(public / "ram")  # the shorter of two whole-tree mounts
    assert len([f for f in sensor.filesystems if str(public / "again") in f.mount_points]) == 1
    pid = write_as_nobody(public / "again")  # written through the bind mount: reported once, by one path
    seen = wait_for(lambda: len(changes(collected, public / "ram")) >= 5 and changes(collected, public / "ram"),
                    timeout=15, what="the writes through the bind mount")
    assert without_pid(seen) == expected(public / "ram") and {o.pid for o in seen} == {pid}
    assert changes(collected, public / "again") == []
    assert f"{public / 'ram'} (tmpfs, also at {public / 'again'})" in sensor.status().message


def test_a_fuse_mount_falls_back_to_inotify(sensor: FsWriteSensor, sshd: tuple[int, Path],  # noqa: F811
                                            public: Path, collected: Collected) -> None:
    port, key = sshd
    remote, point = public / "remote", public / "share"
    remote.mkdir()
    point.mkdir()
    result = run("sshfs", f"root@127.0.0.1:{remote}", str(point), "-p", str(port), "-o",
                 f"IdentityFile={key},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes")
    if result.returncode != 0:
        pytest.skip(f"sshfs could not mount here: {result.stderr.strip()}")
    try:
        sensor.add_mount(str(point))
        (fallback,) = wait_for(lambda: [o for o in list(collected.items) if isinstance(o, MarkFallback)
                                        and o.mount_point == str(point)], timeout=15, what="the fallback")
        assert fallback.fstype == "fuse.sshfs" and "FUSE" in fallback.reason
        assert any(h.status == "degraded" and str(point) in h.message and "inotify" in h.message
                   for h in list(collected.health))
        message = sensor.status().message  # other FUSE mounts of this machine may be listed too
        assert "; inotify fallback for " in message and f"{point} (fuse.sshfs: FUSE" in message
        assert all(str(point) not in f.mount_points for f in sensor.filesystems)
        sensor.resync()  # asked again (another mount appeared): reported once, not again
        assert len([o for o in list(collected.items) if isinstance(o, MarkFallback)
                    and o.mount_point == str(point)]) == 1
    finally:
        run("fusermount3", "-u", str(point))


def only_the_tmpfs(public: Path) -> str:
    """A mount table of the test's tmpfs alone, so nobody else's writes fill the sensor's queue."""
    mount_tmpfs(public / "ram")
    table = public / "mountinfo"
    table.write_text("".join(line + "\n" for line in Path("/proc/self/mountinfo").read_text().splitlines()
                             if line.split()[4] == str(public / "ram")))
    return str(table)


def write_400_files_while_held_back(sensor: FsWriteSensor, folder: Path) -> None:
    sensor.pause()
    process = as_nobody(sys.executable, "-c", "import sys\nfor i in range(400):\n"
                        "    open(f'{sys.argv[1]}/f{i}', 'w').close()", str(folder))
    assert process.wait(timeout=60) == 0
    sensor.resume()


def test_a_burst_beyond_the_kernels_queue_limit_loses_nothing(public: Path, collected: Collected) -> None:
    """The shipped sensor's queue is not bounded by fs.fanotify.max_queued_events (lowered here below the
    burst while the group is made): an `rm -rf` that outruns the reader cannot blind it to a copy beside."""
    require_fid()
    table = only_the_tmpfs(public)
    sensor = FsWriteSensor(collected.add, collected.add_health, mountinfo=table)
    with lowered("fanotify/max_queued_events", 64):
        sensor.start()
    try:
        write_400_files_while_held_back(sensor, public / "ram")
        def closed() -> set[str]:
            return {Path(o.path).name for o in list(collected.items)
                    if isinstance(o, FileObservation) and o.kind == "closed"}

        wait_for(lambda: len(closed()) == 400, timeout=30, what="all 400 closes")
        assert closed() == {f"f{i}" for i in range(400)}
        assert not [o for o in list(collected.items) if isinstance(o, FsWritesOverflow)]
        assert sensor.counters.drops == 0
    finally:
        sensor.stop()


def test_a_queue_overflow_is_reported_once(public: Path, collected: Collected) -> None:
    """An overflow still happens when the kernel cannot allocate an event (the agent's memory cgroup is
    full): made here the way the test can, with a bounded queue made small (max_queued_events is read when
    the group is made, then restored) and the reader held back while more files are written than it holds."""
    require_fid()
    table = only_the_tmpfs(public)
    sensor = FsWriteSensor(collected.add, collected.add_health, mountinfo=table, unlimited_queue=False)
    with lowered("fanotify/max_queued_events", 64):
        sensor.start()
    try:
        write_400_files_while_held_back(sensor, public / "ram")
        (lost,) = wait_for(lambda: [o for o in list(collected.items) if isinstance(o, FsWritesOverflow)],
                           timeout=15, what="the overflow")
        assert lost.mount_points == (str(public / "ram"),)
        assert sensor.counters.drops == 1 and sensor.status().drops == 1
        assert next(h for h in list(collected.health) if "overflowed" in h.message).status == "degraded"
        assert "1 queue overflows" in sensor.status().message
    finally:
        sensor.stop()


def test_closes_and_deletions_that_cannot_matter_are_counted_not_handed_over(
        public: Path, collected: Collected) -> None:
    """The pipeline's answers (worth_examining, worth_a_deletion) are asked on the sensor's thread: a small
    closed file and the deletion of something not inventoried never reach the queue; a model-sized file
    and the deletion of an inventoried one do."""
    require_fid()
    mount_tmpfs(public / "ram")
    known = str(public / "ram" / "known.bin")
    sensor = FsWriteSensor(collected.add, collected.add_health, wanted=lambda path, size: size >= 4096,
                           wanted_gone=lambda path, is_directory: path == known)
    sensor.start()
    try:
        folder = public / "ram"  # written by another process: the sensor ignores its own
        write = ("import os, sys\n"
                 "for name, size in (('small.txt', 100), ('big.bin', 8192), ('known.bin', 8192)):\n"
                 "    open(os.path.join(sys.argv[1], name), 'wb').write(b'w' * size)\n")
        subprocess.run([sys.executable, "-c", write, str(folder)], check=True, timeout=60)

        def seen(last: tuple[str, str]) -> list[tuple[str, str]] | None:
            found = [(o.kind, os.path.basename(o.path)) for o in changes(collected, folder)]
            return found if last in found else None

        wait_for(lambda: seen(("closed", "known.bin")), timeout=20, what="the closes")
        delete = "import os, sys\nfor name in sys.argv[2:]:\n    os.unlink(os.path.join(sys.argv[1], name))\n"
        subprocess.run([sys.executable, "-c", delete, str(folder), "small.txt", "big.bin", "known.bin"],
                       check=True, timeout=60)
        found = wait_for(lambda: seen(("deleted", "known.bin")), timeout=20, what="the inventoried file's deletion")
        assert found == [("closed", "big.bin"), ("closed", "known.bin"), ("deleted", "known.bin")]
        assert sensor.not_wanted == 3  # the small close, the deletions of small.txt and big.bin
        assert "cannot matter" in sensor.status().message
    finally:
        sensor.stop()
