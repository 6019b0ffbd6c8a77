"""The file sensor on a real inotify instance (any user): what each change of the tree becomes, in order.

Nothing-happened assertions wait for a sentinel written after the change: the sensor reports in the
kernel's order, so once the sentinel is seen, anything the change produced has been delivered."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.sensors.conftest import PYTHON, Collected
from tests.waiting import wait_for
from weightwarden.agent.sensors.files import FileObservation, FileSensor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the inotify reader is Linux only")


def changes(collected: Collected) -> list[FileObservation]:
    return [o for o in list(collected.items) if isinstance(o, FileObservation)]


def about(collected: Collected, path: Path) -> list[FileObservation]:
    return [o for o in changes(collected) if str(path) in (o.path, o.dest_path)]


def seen(collected: Collected, path: Path, kind: str | None = None) -> list[FileObservation]:
    return wait_for(lambda: [o for o in about(collected, path) if kind is None or o.kind == kind], timeout=15,
                    what=f"{kind or 'an observation'} of {path}")


def after_sentinel(collected: Collected, root: Path, name: str = "sentinel") -> list[FileObservation]:
    """Everything observed before a file written now shows up (the kernel's order is kept)."""
    sentinel = root / name
    sentinel.write_bytes(b"s")
    seen(collected, sentinel, "closed")
    observed = changes(collected)
    return observed[:observed.index(FileObservation("created", str(sentinel)))]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    watched = tmp_path / "watched"
    watched.mkdir()
    return watched


@pytest.fixture
def sensor(root: Path, collected: Collected) -> Iterator[FileSensor]:
    sensor = FileSensor([str(root)], collected.add, collected.add_health)
    sensor.start()
    try:
        yield sensor
    finally:
        sensor.stop()


def test_a_file_written_renamed_and_deleted_is_reported_in_order(root: Path, sensor: FileSensor,
                                                                  collected: Collected) -> None:
    first, second = root / "weights.bin", root / "model.safetensors"
    first.write_bytes(b"w" * 100)
    first.rename(second)
    second.unlink()
    seen(collected, second, "deleted")
    assert changes(collected) == [FileObservation("created", str(first)), FileObservation("modified", str(first)),
                                  FileObservation("closed", str(first)),
                                  FileObservation("moved", str(first), str(second)),
                                  FileObservation("deleted", str(second))]


def test_opens_reads_and_attribute_changes_are_not_asked_for(root: Path, collected: Collected) -> None:
    model = root / "model.bin"
    model.write_bytes(b"w" * 100)
    sensor = FileSensor([str(root)], collected.add, collected.add_health)
    sensor.start()
    try:
        model.read_bytes()
        os.chmod(model, 0o600)
        os.utime(model, (0, 0))
        assert after_sentinel(collected, root) == []
    finally:
        sensor.stop()


def test_a_new_directory_is_watched_before_it_is_reported(root: Path, sensor: FileSensor,
                                                          collected: Collected) -> None:
    """`mkdir -p` and a file at once: the file may predate the watch, so the one "created" observation of the
    directory is what tells the receiver to look inside; what happens inside afterwards is reported."""
    deep = root / "unpacked" / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "early.bin").write_bytes(b"e")
    assert seen(collected, root / "unpacked", "created") == [FileObservation("created", str(root / "unpacked"),
                                                                             is_directory=True)]
    after_sentinel(collected, root)  # a/ and b/ may have come after the walk of unpacked/: their events too
    later = deep / "later.bin"
    later.write_bytes(b"l")
    seen(collected, later, "closed")


def test_moves_inside_are_one_observation_and_the_watches_follow_a_renamed_directory(
        root: Path, sensor: FileSensor, collected: Collected) -> None:
    (root / "one" / "inner").mkdir(parents=True)
    (root / "two").mkdir()
    seen(collected, root / "two", "created")
    before = len(changes(collected))
    (root / "one").rename(root / "two" / "renamed")
    moved = seen(collected, root / "two" / "renamed")
    assert moved == [FileObservation("moved", str(root / "one"), str(root / "two" / "renamed"), True)]
    inside = root / "two" / "renamed" / "inner" / "weights.bin"
    inside.write_bytes(b"w")
    seen(collected, inside, "closed")
    (root / "two" / "renamed" / "inner" / "weights.bin").rename(root / "weights.bin")
    seen(collected, root / "weights.bin", "moved")
    assert changes(collected)[before:] == [
        FileObservation("moved", str(root / "one"), str(root / "two" / "renamed"), True),
        FileObservation("created", str(inside)), FileObservation("modified", str(inside)),
        FileObservation("closed", str(inside)), FileObservation("moved", str(inside), str(root / "weights.bin"))]


def test_a_move_out_is_a_deletion_and_a_move_in_a_creation(root: Path, tmp_path: Path, sensor: FileSensor,
                                                           collected: Collected) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "leaving" / "sub").mkdir(parents=True)
    (root / "leaving.bin").write_bytes(b"l")
    seen(collected, root / "leaving.bin", "closed")
    (root / "leaving").rename(outside / "left")
    (root / "leaving.bin").rename(outside / "left.bin")
    assert seen(collected, root / "leaving.bin", "deleted") == [FileObservation("deleted", str(root / "leaving.bin"))]
    assert about(collected, root / "leaving")[-1] == FileObservation("deleted", str(root / "leaving"),
                                                                     is_directory=True)
    # the directory that left is no longer watched: nothing is said about it under its old path
    (outside / "left" / "sub" / "after.bin").write_bytes(b"a")
    assert [o for o in after_sentinel(collected, root, "sentinel-1") if "after.bin" in o.path] == []

    (outside / "arriving" / "sub").mkdir(parents=True)
    (outside / "arriving.bin").write_bytes(b"a")
    (outside / "arriving").rename(root / "arriving")
    (outside / "arriving.bin").rename(root / "arriving.bin")
    assert seen(collected, root / "arriving.bin") == [FileObservation("created", str(root / "arriving.bin"))]
    assert about(collected, root / "arriving") == [FileObservation("created", str(root / "arriving"),
                                                                   is_directory=True)]
    later = root / "arriving" / "sub" / "later.bin"  # the directory that came in is watched, all the way down
    later.write_bytes(b"l")
    seen(collected, later, "closed")


def test_a_deleted_directory_made_again_is_watched_again(root: Path, sensor: FileSensor,
                                                         collected: Collected) -> None:
    folder = root / "folder"
    folder.mkdir()
    seen(collected, folder, "created")  # watched from now on
    (folder / "file.bin").write_bytes(b"f")
    seen(collected, folder / "file.bin", "closed")
    (folder / "file.bin").unlink()
    folder.rmdir()
    assert seen(collected, folder, "deleted") == [FileObservation("deleted", str(folder), is_directory=True)]
    assert about(collected, folder / "file.bin")[-1] == FileObservation("deleted", str(folder / "file.bin"))
    wait_for(lambda: sensor.status().message.endswith("(1 directories)"), timeout=15,
             what="the deleted directory's watch to be dropped (IN_IGNORED)")
    folder.mkdir()
    wait_for(lambda: len(about(collected, folder)) == 3, timeout=15, what="the directory made again")
    assert about(collected, folder)[-1] == FileObservation("created", str(folder), is_directory=True)
    again = folder / "again.bin"
    again.write_bytes(b"a")
    seen(collected, again, "closed")


def test_names_that_are_not_utf8_round_trip(root: Path, sensor: FileSensor, collected: Collected) -> None:
    raw = os.fsencode(str(root)) + b"/caf\xe9 \xff.bin"
    with open(raw, "wb") as file:
        file.write(b"w")
    path = os.fsdecode(raw)
    observed = wait_for(lambda: [o for o in changes(collected) if o.path == path and o.kind == "closed"],
                        timeout=15, what="the file with an undecodable name")
    assert os.fsencode(observed[0].path) == raw and os.path.exists(observed[0].path)


def test_symbolic_links_are_never_followed(root: Path, tmp_path: Path, collected: Collected) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    sensor = FileSensor([str(root)], collected.add, collected.add_health)
    sensor.start()
    try:
        (root / "later-link").symlink_to(elsewhere / "sub", target_is_directory=True)
        assert seen(collected, root / "later-link") == [FileObservation("created", str(root / "later-link"))]
        (elsewhere / "weights.bin").write_bytes(b"w")
        (elsewhere / "sub" / "weights.bin").write_bytes(b"w")
        assert [o for o in after_sentinel(collected, root) if "weights.bin" in o.path] == []
        assert sensor.status().message == "watching 1 roots (1 directories)"
    finally:
        sensor.stop()


def test_a_root_inside_another_is_reported_once(root: Path, collected: Collected) -> None:
    inner = root / "inner"
    inner.mkdir()
    sensor = FileSensor([str(inner), str(root), str(root)], collected.add, collected.add_health)
    sensor.start()
    try:
        (inner / "weights.bin").write_bytes(b"w")
        seen(collected, inner / "weights.bin", "closed")
        assert after_sentinel(collected, root) == [FileObservation(kind, str(inner / "weights.bin"))
                                                   for kind in ("created", "modified", "closed")]
        assert sensor.status().message == "watching 3 roots (2 directories)"
    finally:
        sensor.stop()


def test_status_counts_what_it_reported(root: Path, collected: Collected) -> None:
    sensor = FileSensor([str(root)], collected.add, collected.add_health)
    assert sensor.status().state == "stopped"
    sensor.start()
    try:
        (root / "sub").mkdir()
        seen(collected, root / "sub", "created")
        (root / "sub" / "weights.bin").write_bytes(b"w")
        seen(collected, root / "sub" / "weights.bin", "closed")
        status = sensor.status()
        assert (status.name, status.state, status.method, status.message) == (
            "files", "running", "inotify", "watching 1 roots (2 directories)")
        assert status.events == len(changes(collected)) == 4 and status.drops == 0 and status.backlog == 0
        assert status.privilege == ("root" if os.geteuid() == 0 else "user")
        assert [(h.sensor, h.status, h.message) for h in collected.health] == [
            ("files", "running", "watching 1 roots")]
    finally:
        sensor.stop()
    assert sensor.status().state == "stopped"


def test_a_root_that_cannot_be_watched_is_polled_instead(tmp_path: Path, collected: Collected) -> None:
    """inotify watches directories only (IN_ONLYDIR); the polling fallback takes a file."""
    single, present, missing = tmp_path / "model.bin", tmp_path / "present", tmp_path / "missing"
    single.write_bytes(b"w")
    present.mkdir()
    sensor = FileSensor([str(present), str(single), str(missing)], collected.add, collected.add_health)
    sensor.start()
    try:
        polled, lost = [h.message for h in collected.health if h.status == "degraded"]
        assert polled == f"{single}: native watching failed (Not a directory); polling every 2 s instead"
        assert lost == (f"{missing}: native watching failed (No such file or directory); cannot be polled "
                        "either (No such file or directory): not watched")
        assert sensor.polled_roots == [str(single)]
        status = sensor.status()
        assert (status.state, status.method) == ("degraded", "inotify+polling")
        assert status.message == "watching 3 roots (1 directories); 1 polled every 2 s"
        single.write_bytes(b"changed")
        seen(collected, single, "modified")
    finally:
        sensor.stop()


def test_started_again_after_a_stop(root: Path, collected: Collected) -> None:
    (root / "sub").mkdir()
    sensor = FileSensor([str(root)], collected.add, collected.add_health)
    sensor.start()
    sensor.stop()
    sensor.start()
    try:
        assert sensor.status().message == "watching 1 roots (2 directories)"
        (root / "sub" / "weights.bin").write_bytes(b"w")
        seen(collected, root / "sub" / "weights.bin", "closed")
    finally:
        sensor.stop()


def test_a_failing_receiver_does_not_stop_the_reading(root: Path) -> None:
    received: list[FileObservation] = []

    def fussy(observation: FileObservation) -> None:
        received.append(observation)
        if len(received) == 1:
            raise RuntimeError("receiver failed")

    sensor = FileSensor([str(root)], fussy, lambda health: None)
    sensor.start()
    try:
        (root / "first.bin").write_bytes(b"1")
        (root / "second.bin").write_bytes(b"2")
        wait_for(lambda: FileObservation("closed", str(root / "second.bin")) in received, timeout=15,
                 what="the observations after the failed one")
    finally:
        sensor.stop()


WRITE_UNTIL_STOPPED = textwrap.dedent("""
    import os, sys
    folder, stop = sys.argv[1], sys.argv[2]
    number = 0
    while not os.path.exists(stop):
        with open(os.path.join(folder, f"f{number % 50}.bin"), "wb") as f:
            f.write(b"x")
        number += 1
        if number % 200 == 0:
            print("200 more", flush=True)
""")


def test_nothing_is_delivered_after_stop_returns(root: Path, tmp_path: Path) -> None:
    """Files keep changing while the sensor stops and after; the receiver is slow, so a delivery is likely
    in progress when stop() is called."""
    stopped = threading.Event()
    late: list[object] = []
    delivered = threading.Event()

    def slow(item: object) -> None:
        if stopped.is_set():
            late.append(item)
        delivered.set()
        threading.Event().wait(0.001)

    sensor = FileSensor([str(root)], slow, slow)
    sensor.start()
    stop_file = tmp_path / "stop"
    writer = subprocess.Popen([PYTHON, "-c", WRITE_UNTIL_STOPPED, str(root), str(stop_file)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert delivered.wait(15)
        sensor.stop()
        stopped.set()
        for _ in range(2):  # 400 more writes after stop() returned
            assert writer.stdout.readline().strip() == "200 more"
    finally:
        stop_file.touch()
        writer.wait(timeout=30)
        if writer.stdout is not None:
            writer.stdout.close()
    assert late == []
