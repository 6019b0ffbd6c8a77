"""Nothing is lost silently: real kernel overflows, made by the test within the kernel's own limits, each
become a health report followed by a rescan (fanotify, inotify) or a re-read of every process from /proc
(proc connector).

The reader is held back (the sensors' pause(), or SIGSTOP for the whole agent) while more events happen
than the kernel queues; the inotify watch limit is lowered for an instant and restored in a `finally`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.cli.helpers import wait_for, write_config
from tests.agent.sensors.conftest import PYTHON, Collected, require_fanotify, require_proc_connector
from tests.agent.sensors.test_agent_activity import Agent, events
from tests.conftest import write_safetensors
from weightwarden.agent.activity import ActivityMonitor
from weightwarden.agent.config import load_config
from weightwarden.agent.events import Event, ModelFile, utc_now
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.pipeline.activity_events import access_event
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.access import AccessObservation, AccessOverflow, AccessSensor
from weightwarden.agent.sensors.files import FileObservation, FileSensor, SensorHealth
from weightwarden.agent.sensors.processes import ProcConnectorSensor

pytestmark = pytest.mark.root


def kernel_limit(name: str, default: int) -> int:
    try:
        return int(Path(f"/proc/sys/fs/{name}").read_text())
    except OSError:  # older kernels do not show the fanotify limit: it is the compiled-in default
        return default


@contextlib.contextmanager
def lowered(name: str, value: int) -> Iterator[None]:
    """A kernel limit lowered for the shortest time the test needs, always restored."""
    path = Path(f"/proc/sys/fs/{name}")
    try:
        old = path.read_text()
        path.write_text(f"{value}\n")
    except OSError as error:
        pytest.skip(f"cannot change fs.{name.replace('/', '.')} here: {error}")
    try:
        yield
    finally:
        path.write_text(old)


OPEN_EACH = textwrap.dedent("""
    import os, sys
    folder = sys.argv[1]
    for name in os.listdir(folder):
        os.close(os.open(os.path.join(folder, name), os.O_RDONLY))
""")


HOLD = textwrap.dedent("""
    import sys
    with open(sys.argv[1], "rb") as f:
        print("holding", flush=True)
        sys.stdin.readline()
""")


def test_fanotify_queue_overflow_is_reported_then_the_protected_roots_rescanned(tmp_path: Path) -> None:
    """More opens of a protected model than the group's queue holds (max_queued_events) while the reader
    is paused: through hard links, so no two events merge (the kernel merges same-path events of a pid)."""
    require_fanotify()
    require_proc_connector()
    limit = kernel_limit("fanotify/max_queued_events", 16384)
    if limit > 100_000:
        pytest.skip(f"fs.fanotify.max_queued_events is {limit}: too many opens for a test")
    models, data = tmp_path / "models", tmp_path / "data"
    data.mkdir()
    model = write_safetensors(models / "llama" / "model.safetensors")
    config_path = write_config(tmp_path / "config.toml", data_dir=data, protected=[models], watched=[])
    with config_path.open("a") as config_file:  # no permission events: a paused reader must not stall openers
        config_file.write("\n[sensors]\nhold_opens = false\nnetwork = false\nmounts = false\n")
    config = load_config(config_path, mode="system")
    st = model.stat()
    inventory = Inventory([ModelFile(str(model), "safetensors", st.st_size, "llama", device=st.st_dev,
                                     inode=st.st_ino)])
    happened: list[tuple[str, object]] = []  # health reports, lost accesses and access events, in order

    def emitter(source: str) -> Callable[..., None]:
        def emit(observation: object, at: float | None = None) -> None:
            if isinstance(observation, SensorHealth):
                happened.append(("health", observation))
            elif isinstance(observation, AccessOverflow):  # the agent rescans the protected roots for it
                happened.append(("rescan", observation))
            elif isinstance(observation, AccessObservation):  # as the dispatcher turns it into an event
                happened.append(("record", access_event(observation, inventory, utc_now())))
        return emit

    monitor = ActivityMonitor(config, inventory, emitter)
    monitor.start()
    holder = None
    try:
        access = monitor.access
        assert isinstance(access, AccessSensor) and list(access.marked.values()) == [str(model)]
        links = tmp_path / "links"
        links.mkdir()
        for number in range(limit + 500):
            os.link(model, links / str(number))
        access.pause()
        subprocess.run([PYTHON, "-c", OPEN_EACH, str(links)], check=True, timeout=120)
        assert access.status().backlog > limit  # the full queue, and the overflow record behind it
        holder = subprocess.Popen([PYTHON, "-c", HOLD, str(model)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)  # its open is lost too: the queue is full
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        access.resume()

        def rescan_index() -> int | None:
            found = [i for i, (kind, _) in enumerate(list(happened)) if kind == "rescan"]
            return found[0] + 1 if found else None  # +1: never 0, which wait_for would take as "not yet"

        at = wait_for(rescan_index, timeout=60, what="the rescan after the overflow") - 1
        assert isinstance(happened[at][1], AccessOverflow)  # tests/agent/pipeline: -> rescan of protected roots
        overflow = [i for i, (kind, item) in enumerate(happened[:at]) if kind == "health"
                    and isinstance(item, SensorHealth) and item.sensor == "access" and item.status == "degraded"]
        assert len(overflow) == 1
        health = happened[overflow[0]][1]
        assert isinstance(health, SensorHealth) and "overflow" in health.message and "rescanning" in health.message
        assert access.status().drops == 1
        # what the queue held before the overflow was delivered, attributed to the opener
        reads = [r for kind, r in happened if kind == "record" and isinstance(r, Event)
                 and r.action.value == "model-read"]
        assert 0 < len(reads) <= limit
        assert reads[0].process is not None and (reads[0].process.name or "").startswith("python")
        # the reader whose open was lost is named anyway: it held the model open when the overflow came
        recovered = wait_for(lambda: [r for kind, r in list(happened) if kind == "record" and isinstance(r, Event)
                                      and r.action.value == "model-opened" and r.process is not None
                                      and r.process.pid == holder.pid], timeout=30, what="the holder to be named")
        assert recovered[0].process is not None and str(model) in (recovered[0].process.command_line or "")
        assert access.status().backlog == 0
    finally:
        monitor.stop()
        if holder is not None:
            holder.kill()
            holder.wait(timeout=10)
            for stream in (holder.stdin, holder.stdout):
                if stream is not None:
                    stream.close()


FORK_BURST = textwrap.dedent("""
    import os, sys
    for _ in range(int(sys.argv[1])):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
""")


def test_lost_proc_connector_messages_are_reported_and_the_cache_reread_from_proc() -> None:
    """4 KiB socket buffers and paused readers: a burst of forks fills them, and the news of a process
    started after that is lost. After the ENOBUFS the cache is re-read from /proc, so that process is
    still named once it has exited."""
    require_proc_connector()
    cache = ProcessCache()
    health = Collected()
    sensor = ProcConnectorSensor(cache, health.add_health, receive_buffer=4096)
    sensor.start()
    marker = None
    try:
        sensor.pause()
        subprocess.run([PYTHON, "-c", FORK_BURST, "300"], check=True, timeout=60)
        marker = subprocess.Popen(["sleep", "30"])  # its fork and exec messages find the buffer full
        sensor.resume()
        # (other processes on the machine may overflow the tiny buffers again later: the first report counts)
        lost = wait_for(lambda: [h for h in health.health if "proc connector lost" in h.message], timeout=30,
                        what="the report of lost messages")[0]
        assert lost.status == "degraded" and "ENOBUFS" in lost.message and "re-read all" in lost.message
        # the exit accounting (taskstats) lost records in the same burst, and says what that costs
        exits = wait_for(lambda: [h for h in health.health if "taskstats lost" in h.message], timeout=30,
                         what="the report of lost exit records")[0]
        assert exits.status == "degraded" and "unmeasured" in exits.message
        assert sensor.status().drops >= 2 and sensor.status().state == "running"
        marker.kill()
        marker.wait(timeout=10)
        info = cache.process_info(marker.pid)
        assert (info.name, info.command_line, info.exited) == ("sleep", "sleep 30", True)
        assert info.parents and info.parents[0].pid == os.getpid()
    finally:
        sensor.stop()
        if marker is not None and marker.poll() is None:
            marker.kill()
            marker.wait(timeout=10)


def observed(collected: Collected, path: Path) -> list[FileObservation]:
    return [o for o in list(collected.items) if isinstance(o, FileObservation) and o.path == str(path)]


def watch_limit_reports(collected: Collected) -> list[SensorHealth]:
    return [h for h in list(collected.health) if h.status == "degraded" and "watch limit" in h.message]


def test_inotify_watch_limit_at_start_falls_back_to_polling(tmp_path: Path, collected: Collected) -> None:
    root = tmp_path / "watched"
    (root / "sub").mkdir(parents=True)
    sensor = FileSensor([str(root)], collected.add, collected.add_health)
    try:
        with lowered("inotify/max_user_watches", 1):  # no watch beyond the first for this user: root or sub fails
            sensor.start()
        (report,) = watch_limit_reports(collected)
        assert report.sensor == "files" and str(root) in report.message and "polling" in report.message
        assert sensor.polled_roots == [str(root)]
        status = sensor.status()
        assert (status.state, status.method) in {("degraded", "inotify+polling"), ("degraded", "polling")}
        new = root / "sub" / "weights.bin"
        new.write_bytes(b"w" * 100)
        wait_for(lambda: observed(collected, new), timeout=15, what="the polling fallback to see the new file")
    finally:
        sensor.stop()


def test_inotify_watch_limit_reached_later_by_a_new_directory(tmp_path: Path, collected: Collected) -> None:
    """A new directory whose watch the kernel refuses (ENOSPC): its root is polled as well."""
    root = tmp_path / "watched"
    root.mkdir()
    sensor = FileSensor([str(root)], collected.add, collected.add_health)
    sensor.start()
    try:
        assert not watch_limit_reports(collected) and sensor.polled_roots == []
        with lowered("inotify/max_user_watches", 1):
            (root / "unpacked").mkdir()
            (report,) = wait_for(lambda: watch_limit_reports(collected), timeout=15,
                                 what="the watch limit to be reported")
        assert str(root) in report.message and sensor.polled_roots == [str(root)]
        assert "as well" in report.message
        assert (sensor.status().state, sensor.status().method) == ("degraded", "inotify+polling")
        new = root / "unpacked" / "weights.bin"
        new.write_bytes(b"w" * 100)
        wait_for(lambda: observed(collected, new), timeout=15, what="the polling fallback to see the new file")
    finally:
        sensor.stop()


def test_no_inotify_instance_left_polls_every_root(tmp_path: Path, collected: Collected) -> None:
    roots = [tmp_path / "one", tmp_path / "two"]
    for root in roots:
        root.mkdir()
    sensor = FileSensor([str(root) for root in roots], collected.add, collected.add_health)
    try:
        with lowered("inotify/max_user_instances", 0):  # for an instant: no new instance for anyone
            sensor.start()
        reports = [h.message for h in collected.health if h.status == "degraded"]
        assert reports == [f"{root}: inotify instance limit reached (fs.inotify.max_user_instances = 0); polling "
                           "every 2 s instead" for root in roots]
        status = sensor.status()
        assert (status.state, status.method, status.message) == ("degraded", "polling",
                                                                 "watching 2 roots; 2 polled every 2 s")
        new = roots[1] / "weights.bin"
        new.write_bytes(b"w" * 100)
        wait_for(lambda: observed(collected, new), timeout=15, what="the polling fallback to see the new file")
    finally:
        sensor.stop()


WRITE_ALTERNATELY = textwrap.dedent("""
    import os, sys
    folder, count = sys.argv[1], int(sys.argv[2])
    fds = [os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT, 0o644) for name in ("a.log", "b.log")]
    for number in range(count):  # alternating files: the kernel merges only repeats of the last event
        os.write(fds[number % 2], b"x")
    for fd in fds:
        os.close(fd)
""")


def overflows(collected: Collected) -> list[int]:
    """Where each overflow observation is, among all observations in the order they came."""
    return [i for i, o in enumerate(list(collected.items)) if isinstance(o, FileObservation) and o.kind == "overflow"]


def test_inotify_queue_overflow_is_one_observation_after_the_events_queued_before_it(
        tmp_path: Path, collected: Collected) -> None:
    """A 64-event queue (the instance takes fs.inotify.max_queued_events when it is made), a paused reader,
    a thousand writes: the 64 queued events come first, then exactly one overflow, twice over. A
    directory made while the queue was full has no event at all: it is watched after the overflow
    because every root is walked again."""
    root = tmp_path / "watched"
    root.mkdir()
    sensor = FileSensor([str(root)], collected.add, collected.add_health)
    with lowered("inotify/max_queued_events", 64):
        sensor.start()
    try:
        for number in (1, 2):
            sensor.pause()
            subprocess.run([PYTHON, "-c", WRITE_ALTERNATELY, str(root), "1000"], check=True, timeout=60)
            assert sensor.status().backlog >= 64  # a full queue (and the overflow record behind it)
            made = root / f"made-while-full-{number}"
            made.mkdir()
            first = len(collected.items)
            sensor.resume()
            wait_for(lambda n=number: len(overflows(collected)) >= n, timeout=30, what="the overflow observation")
            at = overflows(collected)[-1]
            queued = collected.items[first:at]
            assert 0 < len(queued) <= 64
            assert {o.path for o in queued if isinstance(o, FileObservation)} <= {str(root / "a.log"),
                                                                                  str(root / "b.log")}
            inside = made / "weights.bin"
            inside.write_bytes(b"w")
            wait_for(lambda path=inside: [o for o in observed(collected, path) if o.kind == "closed"], timeout=15,
                     what=f"{inside} closed (watched after the overflow)")  # its last event: the queue is empty
            assert len(overflows(collected)) == number and sensor.status().drops == number
        assert [h.status for h in collected.health] == ["running"]  # overflows are the receiver's to report
        assert sensor.status().state == "running" and sensor.status().backlog == 0
    finally:
        sensor.stop()


@pytest.mark.e2e
def test_inotify_queue_overflow_in_the_agent_is_reported_then_the_watched_roots_rescanned(tmp_path: Path) -> None:
    """The whole agent is stopped (SIGSTOP) while more file events happen than its inotify queue holds,
    and a model is copied in the middle of it: only the rescan after the overflow can find that copy."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    limit = kernel_limit("inotify/max_queued_events", 16384)
    if limit > 100_000:
        pytest.skip(f"fs.inotify.max_queued_events is {limit}: too many events for a test")
    models, elsewhere, data = tmp_path / "models", tmp_path / "elsewhere", tmp_path / "data"
    for folder in (elsewhere, data):
        folder.mkdir()
    model = write_safetensors(models / "llama" / "model.safetensors", rows=512)
    config = write_config(tmp_path / "config.toml", data_dir=data, protected=[models], watched=[elsewhere])
    with config.open("a") as config_file:  # the inotify sensor on the watch roots, not filesystem marks
        config_file.write("\n[sensors]\nfile_marks = false\n")
    agent = Agent(config, dict(os.environ))
    try:
        wait_for(lambda: "scan-finished" in agent.actions(), timeout=60, what="the initial inventory")
        before = len(agent.records("events"))
        weights = model.read_bytes()  # now: with the agent stopped, an open of the model would wait for it
        copy = elsewhere / "copy.safetensors"
        agent.process.send_signal(signal.SIGSTOP)
        try:
            subprocess.run([PYTHON, "-c", WRITE_ALTERNATELY, str(elsewhere), str(limit + 1000)], check=True,
                           timeout=120)
            copy.write_bytes(weights)  # its events are dropped: the queue is full
        finally:
            agent.process.send_signal(signal.SIGCONT)

        def rescanned() -> list[dict[str, object]] | None:
            later = agent.records("events")[before:]
            overflow = [i for i, e in enumerate(later) if e["event"]["action"] == "sensor-health"
                        and "overflow" in e["message"] and e["details"]["sensor"] == "files"]
            if not overflow:
                return None
            scans = [e for e in later[overflow[0]:] if e["event"]["action"] == "scan-finished"]
            roots = {root for e in scans for root in e["details"]["roots"]}
            return later if {str(models), str(elsewhere)} <= roots else None

        later = wait_for(rescanned, timeout=60, what="the overflow report and the rescan of every watched root")
        assert len([e for e in later if e["event"]["action"] == "sensor-health" and "overflow" in e["message"]
                    and e["details"]["sensor"] == "files"]) == 1
        alerts = wait_for(lambda: [a for a in agent.records("alerts") if a["rule"] == "model-copy"
                                   and str(copy) in a["paths"]], timeout=30, what="the copy found by the rescan")
        assert alerts[0]["model"] == "llama"
        assert events(agent, "agent-started")
    finally:
        if agent.process.poll() is None:
            agent.process.send_signal(signal.SIGCONT)
            assert agent.stop() == 0

