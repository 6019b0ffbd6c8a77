"""The fanotify access sensor on real files with real processes: cat, cp, dd, a reader that stays, a
process that memory-maps the model, and our own reads (never reported)."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.agent.sensors.conftest import PYTHON, Collected, wait_for
from tests.conftest import write_safetensors
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.access import AccessObservation, AccessSensor

pytestmark = pytest.mark.root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_safetensors(tmp_path / "models" / "llama" / "model.safetensors", rows=4096)  # ~1.5 MB


def protected(sensor: AccessSensor, path: Path) -> None:
    sensor.protect([str(path)])
    assert sensor.marked, "the model file could not be marked"


def closing(collected: Collected, pid: int) -> AccessObservation:
    (read,) = wait_for(lambda: collected.access("read", pid), timeout=10, what=f"the close by pid {pid}")
    return read


def assert_attributed(obs: AccessObservation, pid: int, name: str, model: Path) -> None:
    process = obs.process
    assert process.pid == pid
    assert process.name == name
    assert process.executable == os.path.realpath(shutil.which(name) or name)
    assert process.command_line is not None and str(model) in process.command_line
    assert (process.uid, process.user) == (os.getuid(), "root")
    assert process.ppid == os.getpid()
    assert process.parents and process.parents[0].pid == os.getpid()  # the chain starts at its parent
    assert process.parents[0].executable == os.path.realpath(PYTHON) or "python" in (process.parents[0].name or "")
    assert obs.path == str(model) and obs.size == model.stat().st_size


def test_cat_is_named_with_its_command_line_user_and_parents(access_sensor: AccessSensor, collected: Collected,
                                                             model: Path) -> None:
    protected(access_sensor, model)
    cat = subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True)
    del cat
    opened = wait_for(lambda: collected.access("opened"), timeout=10, what="the open by cat")[0]
    read = closing(collected, opened.process.pid)
    assert_attributed(opened, opened.process.pid, "cat", model)
    assert_attributed(read, opened.process.pid, "cat", model)
    assert read.mapped is False
    # cat has exited and been reaped before we handle its close: the kernel's exit accounting (taskstats,
    # whole KiB) says what it read since the open we held
    size = model.stat().st_size
    assert read.bytes_read is not None and size - 1024 < read.bytes_read <= size
    assert read.bytes_read_source in ("exit-io", "process-io", "fd-position")


def test_short_lived_cp_is_attributed_after_it_exited(cache: ProcessCache, collected: Collected, model: Path,
                                                      tmp_path: Path) -> None:
    """Without permission events, and with the sensor paused until cp has exited and been reaped, only the
    proc connector's cache can name it. (cp copies 25 MB here: long enough for its exec to be handled.)"""
    from tests.agent.sensors.conftest import require_fanotify

    require_fanotify()
    model = write_safetensors(model.with_name("big.safetensors"), rows=65536)
    sensor = AccessSensor(cache, collected.add, collected.add_health, hold_opens=False)
    sensor.start()
    try:
        protected(sensor, model)
        sensor.pause()
        copy = subprocess.Popen(["cp", str(model), str(tmp_path / "copy.bin")])
        assert copy.wait(timeout=30) == 0  # exited and reaped
        assert not os.path.exists(f"/proc/{copy.pid}")
        sensor.resume()
        read = closing(collected, copy.pid)
        assert read.process.exited is True
        assert_attributed(read, copy.pid, "cp", model)
        assert read.mapped is False
    finally:
        sensor.stop()


def test_dd_partial_read(access_sensor: AccessSensor, collected: Collected, model: Path) -> None:
    protected(access_sensor, model)
    dd = subprocess.run(["dd", f"if={model}", "of=/dev/null", "bs=4096", "count=3", "status=none"], check=True)
    del dd
    opened = wait_for(lambda: collected.access("opened"), timeout=10, what="the open by dd")[0]
    read = closing(collected, opened.process.pid)
    assert_attributed(read, opened.process.pid, "dd", model)
    assert read.process.command_line is not None and "count=3" in read.process.command_line
    assert read.bytes_read is not None and 3 * 4096 - 1024 < read.bytes_read <= 3 * 4096


READER = textwrap.dedent("""
    import mmap, sys
    path, how = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        if how == "mmap":
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            total = sum(m[i] for i in range(0, len(m), 4096))
        else:
            while f.read(65536):
                pass
        print("ready", flush=True)
        sys.stdin.readline()  # the test decides when we close
        if how == "mmap":
            m.close()
    print("closed", flush=True)
    sys.stdin.readline()
""")


def start_reader(model: Path, how: str) -> subprocess.Popen[str]:
    reader = subprocess.Popen([PYTHON, "-c", READER, str(model), how], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    return reader


def release(reader: subprocess.Popen[str]) -> None:
    assert reader.stdin is not None and reader.stdout is not None
    reader.stdin.write("\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "closed"


def finish(reader: subprocess.Popen[str]) -> None:
    if reader.poll() is None:
        reader.kill()
    reader.wait(timeout=10)
    for stream in (reader.stdin, reader.stdout):
        if stream is not None:
            stream.close()


def test_python_process_that_maps_the_model(access_sensor: AccessSensor, collected: Collected, model: Path) -> None:
    protected(access_sensor, model)
    reader = start_reader(model, "mmap")
    try:
        wait_for(lambda: [s for s in access_sensor.session_view() if s["pid"] == reader.pid and s["mapped"]],
                 timeout=10, what="the mapping to be seen while the file is open")
        release(reader)
        read = closing(collected, reader.pid)
        assert read.mapped is True
        assert read.process.name and read.process.name.startswith("python")
        assert read.process.command_line and "mmap" in read.process.command_line
        assert read.process.parents[0].pid == os.getpid()
    finally:
        finish(reader)


def test_sequential_reader_reports_bytes_read(access_sensor: AccessSensor, collected: Collected,
                                              model: Path) -> None:
    protected(access_sensor, model)
    reader = start_reader(model, "read")
    try:
        release(reader)  # closed while the process is still alive: its read count is measurable
        read = closing(collected, reader.pid)
        assert read.mapped is False
        assert read.bytes_read == model.stat().st_size
        assert read.bytes_read_source in ("fd-position", "process-io")
    finally:
        finish(reader)


def test_own_reads_are_never_reported(access_sensor: AccessSensor, collected: Collected, model: Path) -> None:
    protected(access_sensor, model)
    for _ in range(3):
        model.read_bytes()
    wait_for(lambda: access_sensor.ignored_own >= 3, timeout=10, what="our own opens to be seen and dropped")
    subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True)  # a marker after them
    wait_for(lambda: collected.access("read"), timeout=10, what="cat's close")
    # ours and our children only: another agent on this machine (a system-mode test run) may hash the file too
    mine = [o for o in collected.items if isinstance(o, AccessObservation)
            and (o.process.pid == os.getpid() or os.getpid() in {p.pid for p in o.process.parents})]
    assert {o.process.name for o in mine} == {"cat"}


def test_unprotected_files_are_not_reported_and_marks_follow_the_inventory(
        access_sensor: AccessSensor, collected: Collected, model: Path, tmp_path: Path) -> None:
    other = write_safetensors(tmp_path / "other.safetensors", seed=3)
    protected(access_sensor, model)
    subprocess.run(["cat", str(other)], stdout=subprocess.DEVNULL, check=True)
    access_sensor.protect([str(other)])  # the inventory changed: model no longer protected, other is
    assert list(access_sensor.marked.values()) == [str(other)]
    subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True)
    subprocess.run(["cat", str(other)], stdout=subprocess.DEVNULL, check=True)
    wait_for(lambda: collected.access("read"), timeout=10, what="the read of the newly protected file")
    assert {o.path for o in collected.items if isinstance(o, AccessObservation)} == {str(other)}
    assert access_sensor.status().state == "running"


def test_queue_overflow_is_reported_and_triggers_a_rescan(cache: ProcessCache, collected: Collected) -> None:
    """The handler alone, on the kernel's overflow record (test_overflow.py makes a real overflow)."""
    from weightwarden.agent.sensors import fanotify as fan

    rescans: list[bool] = []
    sensor = AccessSensor(cache, collected.add, collected.add_health, lambda: rescans.append(True))
    assert sensor._handle(fan.FanotifyEvent(fan.FAN_Q_OVERFLOW, fan.FAN_NOFD, 0)) is False
    assert rescans == [True] and sensor.status().drops == 1
    (health,) = collected.health
    assert health.status == "degraded" and "overflow" in health.message and "rescanning" in health.message
