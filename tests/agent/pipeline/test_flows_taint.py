"""Taint and bad input in the flow tracker, on real processes: an output deleted while it is written, a
socket the kernel names no process for, an output tainted as it is written and the flow that reads it.

The observations are built here (the sensors' tests cover how they are made); the processes, their files
and the ledger are real (tests/agent/test_lineage_taint.py runs the same through the installed service).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.pipeline.test_flows import SIZE, model, opened, tracker_for  # noqa: F401 - the fixture
from tests.waiting import wait_for
from weightwarden.agent.alert_evidence import LineageEvidence
from weightwarden.agent.events import ModelFile, ProcessInfo
from weightwarden.agent.pipeline.flows import FlowTracker, start_ticks
from weightwarden.agent.sensors.access import AccessObservation
from weightwarden.agent.sensors.files import FileObservation
from weightwarden.agent.sensors.network import ConnectionObservation

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")

# Obeys one command a line: "half" writes the first half of SIZE bytes to argv[1], "unlink" deletes it,
# "rest" writes the second half and closes it; it answers each with "ok" and stays alive afterwards.
WRITER = textwrap.dedent("""
    import os, sys
    size, out = int(sys.argv[2]), open(sys.argv[1], "wb")
    for line in sys.stdin:
        command = line.strip()
        if command == "half":
            out.write(os.urandom(size // 2)); out.flush()
        elif command == "unlink":
            os.unlink(sys.argv[1])
        elif command == "rest":
            out.write(os.urandom(size - size // 2)); out.close()
        print("ok", flush=True)
""")


class Writer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.process = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(SIZE)], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.process.pid

    def do(self, command: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    made = Writer(tmp_path / "half.bin")
    try:
        yield made
    finally:
        made.process.kill()
        made.process.wait(timeout=10)
        for stream in (made.process.stdin, made.process.stdout):
            if stream is not None:
                stream.close()


def reading(tracker: FlowTracker, model: ModelFile, pid: int) -> None:  # noqa: F811
    tracker.access(opened(model, pid), model)
    tracker.access(opened(model, pid, "read", SIZE), model)


def the_alert(tracker: FlowTracker) -> LineageEvidence:
    (alert,) = tracker.tick(time.monotonic() + 5)
    assert isinstance(alert.evidence, LineageEvidence)
    return alert.evidence


def test_an_output_deleted_while_written_is_measured_through_a_held_descriptor(
        model: ModelFile, writer: Writer) -> None:  # noqa: F811
    tracker = tracker_for(model)
    reading(tracker, model, writer.pid)
    writer.do("half")
    writer.do("unlink")
    tracker.file(FileObservation("deleted", str(writer.path), pid=writer.pid))  # it still writes it
    writer.do("rest")
    tracker.file(FileObservation("closed", str(writer.path), pid=writer.pid, size=None))
    (output,) = the_alert(tracker).outputs
    assert (output.state, output.measure, output.bytes) == ("deleted", "held-open", SIZE)
    assert not tracker._held  # let go at the close


def test_an_output_gone_before_it_could_be_held_counts_its_writers_writes_as_an_upper_bound(
        model: ModelFile, writer: Writer) -> None:  # noqa: F811
    tracker = tracker_for(model)
    reading(tracker, model, writer.pid)
    for command in ("half", "unlink", "rest"):  # the deletion was never seen (or came too late)
        writer.do(command)
    tracker.file(FileObservation("closed", str(writer.path), pid=writer.pid, size=None))
    (alert,) = tracker.tick(time.monotonic() + 5)
    assert isinstance(alert.evidence, LineageEvidence)
    (output,) = alert.evidence.outputs
    assert output.state == "deleted" and output.measure == "writes-upper-bound"
    assert SIZE <= output.bytes < SIZE + 4096  # its writes since it joined: the file and its "ok"s
    assert f"at most {output.bytes} bytes" in alert.message


# git's way of writing a small file: much written elsewhere first (the checkout, the pipe to its filter:
# here /dev/null), then the new content under NAME.lock, closed, renamed over NAME.
LOCK_WRITER = textwrap.dedent("""
    import os, sys
    size, target = int(sys.argv[2]), sys.argv[1]
    for line in sys.stdin:
        with open(os.devnull, "wb") as elsewhere:
            elsewhere.write(os.urandom(size))
        with open(target + ".lock", "wb") as lock:
            lock.write(b"x" * 100)
        os.rename(target + ".lock", target)
        print("ok", flush=True)
""")


def test_an_output_renamed_before_its_close_was_looked_at_counts_what_it_holds(
        model: ModelFile, tmp_path: Path) -> None:  # noqa: F811
    index = tmp_path / "index"
    git = subprocess.Popen([sys.executable, "-c", LOCK_WRITER, str(index), str(SIZE)], text=True,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert git.stdin is not None and git.stdout is not None
        tracker = tracker_for(model)
        reading(tracker, model, git.pid)
        git.stdin.write("go\n")
        git.stdin.flush()
        assert git.stdout.readline().strip() == "ok"
        # the close is looked at after the rename: its name is gone (the writer's count bounds it)
        tracker.file(FileObservation("closed", f"{index}.lock", pid=git.pid, size=None))
        tracker.file(FileObservation("moved", f"{index}.lock", dest_path=str(index), pid=git.pid))
        assert tracker.tick(time.monotonic() + 5) == []  # 100 bytes, not the SIZE it wrote elsewhere
        (flow,) = tracker.ledger._flows.values()
        (output,) = flow.outputs.values()
        assert (output.where, output.bytes, output.measure, output.deleted) == (str(index), 100, "size", False)
    finally:
        git.kill()
        git.wait(timeout=10)
        for stream in (git.stdin, git.stdout):
            if stream is not None:
                stream.close()


def test_a_nameless_socket_goes_to_the_one_flow_whose_reader_just_exited(model: ModelFile) -> None:  # noqa: F811
    tracker = tracker_for(model)
    uploader = sleeper()
    reading(tracker, model, uploader.pid)
    uploader.kill()
    uploader.wait(timeout=10)
    wait_for(lambda: start_ticks(uploader.pid) is None, timeout=10, what="the uploader to be gone")
    tracker.connection(nameless(SIZE))
    (output,) = the_alert(tracker).outputs
    assert (output.kind, output.where, output.owner, output.bytes) == ("network", "10.9.9.9:8080", "inferred", SIZE)


def test_a_nameless_socket_is_nobodys_when_two_flows_could_have_sent_it(model: ModelFile) -> None:  # noqa: F811
    tracker = tracker_for(model)
    readers = [sleeper() for _ in range(2)]
    for reader in readers:
        reading(tracker, model, reader.pid)
        reader.kill()
        reader.wait(timeout=10)
    tracker.connection(nameless(SIZE))
    assert tracker.tick(time.monotonic() + 5) == []


def test_a_nameless_socket_is_not_given_to_a_reader_still_running(model: ModelFile) -> None:  # noqa: F811
    tracker = tracker_for(model)
    reader = sleeper()
    try:
        reading(tracker, model, reader.pid)
        tracker.connection(nameless(SIZE))
        assert tracker.tick(time.monotonic() + 5) == []
    finally:
        reader.kill()
        reader.wait(timeout=10)


def test_a_nameless_socket_waits_for_a_sender_about_to_exit(model: ModelFile) -> None:  # noqa: F811
    """curl -T closes its socket a moment before it exits: the notice may come in between."""
    tracker = tracker_for(model)
    reader = sleeper()
    try:
        reading(tracker, model, reader.pid)
        tracker.connection(nameless(SIZE))  # while its sender still runs
    finally:
        reader.kill()
        reader.wait(timeout=10)
    (alert,) = tracker.tick(time.monotonic() + 5)
    (out,) = alert.evidence.outputs
    assert (out.kind, out.owner, out.bytes) == ("network", "inferred", SIZE)


def sleeper() -> subprocess.Popen[bytes]:
    """A process sharing no pipe with the test's others (a shared stdout would join them into one flow)."""
    return subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def nameless(sent: int) -> ConnectionObservation:
    """A TCP socket seen only at its destruction (network sensor: no process, owner unknown)."""
    return ConnectionObservation("closed", None, "10.9.9.1", 40000, "10.9.9.9", 8080, 4026531840, sent, 0,
                                 "tcp_info", seconds=None, final=True, owner="unknown")


def test_an_output_is_tainted_as_it_is_written_and_its_reader_extends_the_incident(
        model: ModelFile, tmp_path: Path) -> None:  # noqa: F811
    tracker = tracker_for(model)
    ledger = tracker.ledger
    ledger.read(1, ProcessInfo(pid=10, name="gpg", user="ana"), "secret", model.path, SIZE, SIZE, 0.0)
    blob = tmp_path / "blob.gpg"
    blob.write_bytes(os.urandom(SIZE))
    st = blob.stat()
    ledger.wrote(1, ProcessInfo(pid=10, name="gpg"), str(blob), "local", SIZE, st.st_dev, st.st_ino, 0.0)
    taint = ledger.taint(st.st_dev, st.st_ino, str(blob))  # before any decision: mv may read it at once
    assert taint is not None and taint.model == "secret" and str(blob) in ledger.tainted_paths()
    (first,) = ledger.decide(1.0, tracker.state_of)
    ledger.inherit(2, ProcessInfo(pid=11, name="curl", user="ana"), taint, str(blob), SIZE, 2.0)
    ledger.sent(2, ProcessInfo(pid=11, name="curl"), "c", "10.9.9.9", 8080, SIZE, 2.0)
    (update,) = ledger.decide(3.0, tracker.state_of)
    assert isinstance(update.evidence, LineageEvidence)
    assert update.evidence.incident == first.id and update.evidence.updates == 1
    assert update.evidence.inherited_from == str(blob) and f"through {blob}, a tainted output" in update.message


def test_a_small_output_is_not_tainted_before_the_decision(model: ModelFile, tmp_path: Path) -> None:  # noqa: F811
    ledger = tracker_for(model).ledger
    ledger.read(1, ProcessInfo(pid=10, name="python3", user="ana"), "secret", model.path, SIZE, SIZE, 0.0)
    result = tmp_path / "result.json"
    result.write_bytes(b"{}" * 512)
    st = result.stat()
    ledger.wrote(1, ProcessInfo(pid=10, name="python3"), str(result), "local", 1024, st.st_dev, st.st_ino, 0.0)
    assert ledger.taint(st.st_dev, st.st_ino, str(result)) is None and not ledger.tainted_paths()


def test_a_nameless_socket_after_a_copy_of_a_tainted_file_goes_to_the_latest_flow_of_the_incident(
        model: ModelFile, tmp_path: Path) -> None:  # noqa: F811
    tracker = tracker_for(model)
    mover, uploader = sleeper(), sleeper()
    try:
        reading(tracker, model, mover.pid)  # mv: read (here: the model) and wrote the copy
        copy = tmp_path / "x"
        copy.write_bytes(os.urandom(SIZE))
        tracker.file(FileObservation("closed", str(copy), pid=mover.pid, size=SIZE))
        (first,) = tracker.tick(time.monotonic() + 5)
        st = copy.stat()
        tracker.access(AccessObservation("opened", str(copy), st.st_dev, st.st_ino, SIZE,
                                         ProcessInfo(pid=uploader.pid, name="curl", user="ana")), None)
    finally:
        for process in (mover, uploader):
            process.kill()
            process.wait(timeout=10)
    tracker.connection(nameless(SIZE))  # both flows' openers just exited; both are the one incident
    (update,) = tracker.tick(time.monotonic() + 10)
    assert isinstance(update.evidence, LineageEvidence) and update.evidence.incident == first.id
    (output,) = update.evidence.outputs
    assert (output.where, output.owner) == ("10.9.9.9:8080", "inferred")
    assert update.evidence.inherited_from == str(copy)
