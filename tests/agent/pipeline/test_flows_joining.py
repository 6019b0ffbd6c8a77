"""Who joins a flow: data must pass to the newcomer (a pipe it reads that a member writes into, the peer of a
member's Unix socket); holding what a member holds is not enough (the stdin every job of a CI runner
inherits). Real processes, real pipes and sockets, descriptors passed over a real Unix socket."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.pipeline.test_flows import SIZE, closed, model, opened, tracker_for  # noqa: F401 - the fixture
from tests.waiting import wait_for
from weightwarden.agent.events import ModelFile, ProcessInfo
from weightwarden.agent.pipeline.flows import children_of, fd_links
from weightwarden.agent.sensors.access import AccessObservation
from weightwarden.agent.sensors.network import ConnectionObservation

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")

# A process started apart (its parent exits at once: it is nobody's sibling or child here) that takes one
# descriptor over a Unix socket, then copies the given number of bytes it reads from it into a file.
RECEIVER = textwrap.dedent("""
    import os, socket, sys
    if os.fork():
        os._exit(0)
    with open(sys.argv[3] + ".part", "w") as note:
        print(os.getpid(), file=note)
    os.rename(sys.argv[3] + ".part", sys.argv[3])
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sys.argv[1])
    server.listen(1)
    server.settimeout(30)
    connection, _ = server.accept()
    _, fds, _, _ = socket.recv_fds(connection, 16, 1)
    left = int(sys.argv[4])
    with os.fdopen(fds[0], "rb") as source, open(sys.argv[2], "wb") as out:
        while left and (chunk := source.read(min(left, 1 << 16))):
            out.write(chunk)
            left -= len(chunk)
    connection.recv(1)  # held until the test lets go: the tracker reads its descriptors
""")


def kill_all(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.kill()
        process.wait(timeout=10)


def test_siblings_sharing_only_an_inherited_stdin_stay_apart(model: ModelFile, tmp_path: Path) -> None:  # noqa: F811
    readable, writable = os.pipe()  # the runner's stdin: every job it starts inherits the read end
    try:
        reader = subprocess.Popen(["sleep", "30"], stdin=readable)
        other = subprocess.Popen(["sleep", "31"], stdin=readable)
        try:
            assert f"pipe:[{os.fstat(readable).st_ino}]<" in fd_links(other.pid)
            tracker = tracker_for(model)
            tracker.access(opened(model, reader.pid), model)
            tracker.access(opened(model, reader.pid, "read", SIZE), model)
            assert other.pid not in tracker.tainted_pids
            out = tmp_path / "unrelated.bin"
            out.write_bytes(os.urandom(SIZE))
            tracker.file(closed(out, other.pid))
            assert tracker.tick(time.monotonic() + 5) == []
        finally:
            kill_all(reader, other)
    finally:
        os.close(readable)
        os.close(writable)


def test_a_sibling_reading_the_readers_pipe_joins(model: ModelFile, tmp_path: Path) -> None:  # noqa: F811
    readable, writable = os.pipe()
    reader = subprocess.Popen(["sleep", "30"], stdout=writable)
    uploader = subprocess.Popen(["sleep", "31"], stdin=readable)
    os.close(readable)
    os.close(writable)  # the parent keeps no end, as a shell making `a | b` does
    try:
        tracker = tracker_for(model)
        tracker.access(opened(model, reader.pid), model)
        assert uploader.pid in tracker.tainted_pids
    finally:
        kill_all(reader, uploader)


def test_the_peer_of_a_readers_unix_socket_joins(model: ModelFile, tmp_path: Path) -> None:  # noqa: F811
    mine, theirs = socket.socketpair()
    reader = subprocess.Popen(["sleep", "30"], stdout=mine.fileno())
    peer = subprocess.Popen(["sleep", "31"], stdin=theirs.fileno())
    mine.close()
    theirs.close()
    try:
        tracker = tracker_for(model)
        tracker.access(opened(model, reader.pid), model)
        assert peer.pid in tracker.tainted_pids
        tracker.close()
    finally:
        kill_all(reader, peer)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(its socket, its output, its pid file)."""
    address, out, pid_file = tmp_path / "receiver.sock", tmp_path / "received.bin", tmp_path / "receiver.pid"
    subprocess.run([sys.executable, "-c", RECEIVER, str(address), str(out), str(pid_file), str(SIZE)],
                   check=True, timeout=30)
    wait_for(lambda: address.exists() and pid_file.exists(), timeout=10, what="the receiver's socket")
    yield address, out, pid_file
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 9)


def test_a_pipe_passed_over_a_unix_socket_carries_the_flow_to_an_unrelated_process(
        model: ModelFile, tmp_path: Path, receiver: tuple[Path, Path, Path]) -> None:  # noqa: F811
    address, out, pid_file = receiver
    unrelated = int(pid_file.read_text())
    readable, writable = os.pipe()
    passed = f"pipe:[{os.fstat(readable).st_ino}]<"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.connect(str(address))
        socket.send_fds(channel, [b"x"], [readable])
        os.close(readable)
        wait_for(lambda: passed in fd_links(unrelated), timeout=10, what="the receiver to hold the read end")
        reader = subprocess.Popen(["sh", "-c", 'read go; cat "$1"; sleep 30', "reader", model.path],
                                  stdin=subprocess.PIPE, stdout=writable)
        os.close(writable)
        try:
            tracker = tracker_for(model)
            tracker.access(opened(model, reader.pid), model)
            assert reader.stdin is not None
            reader.stdin.write(b"go\n")  # it writes once the tracker has seen its open, as the agent would
            reader.stdin.close()
            wait_for(lambda: out.exists() and out.stat().st_size == SIZE, timeout=10,
                     what="the receiver to have copied what the reader wrote")
            tracker.file(closed(out, unrelated))
            (alert,) = tracker.tick(time.monotonic() + 5)
            assert alert.model == "secret" and str(out) in alert.paths
            assert unrelated in tracker.tainted_pids
        finally:
            kill_all(reader)


def connection(phase: str, pid: int, remote: str, port: int, sent: int, seconds: float,
               peer: int | None = None, local_port: int = 40000) -> ConnectionObservation:
    return ConnectionObservation(phase, ProcessInfo(pid=pid, name="p", user="ana"), "127.0.0.1", local_port, remote,
                                 port, 1, sent, 0, "tcp_info", seconds,
                                 peer=None if peer is None else ProcessInfo(pid=peer, name="proxy", user="ana"))


def test_a_local_proxy_counts_what_it_sent_since_the_flow_fed_it_and_no_more_than_it_was_fed(
        model: ModelFile) -> None:  # noqa: F811
    reader = subprocess.Popen(["sleep", "30"])
    proxy = subprocess.Popen(["sleep", "31"])  # stands for ssh -D: its tunnel to the outside is hours old
    try:
        tracker = tracker_for(model)
        tracker.access(opened(model, reader.pid), model)
        tracker.access(opened(model, reader.pid, "read", SIZE), model)
        tunnel = ("203.0.113.9", 22)
        tracker.connection(connection("progress", proxy.pid, *tunnel, sent=5_000_000, seconds=3600, local_port=50000))
        assert tracker.tick(time.monotonic() + 5) == []  # before it is fed, the proxy is nobody's
        tracker.connection(connection("opened", reader.pid, "127.0.0.1", 1080, sent=100, seconds=0.0, peer=proxy.pid))
        assert proxy.pid in tracker.tainted_pids
        tracker.connection(connection("progress", proxy.pid, *tunnel, sent=5_000_100, seconds=3600.05,
                                      local_port=50000))  # the first look since: its baseline
        tracker.connection(connection("closed", reader.pid, "127.0.0.1", 1080, sent=SIZE, seconds=0.5,
                                      peer=proxy.pid))
        # it sent the flow's bytes, and 3 MB of someone's browsing besides: only what it was fed counts
        tracker.connection(connection("progress", proxy.pid, *tunnel, sent=5_000_100 + SIZE + 3_000_000,
                                      seconds=3601, local_port=50000))
        (alert,) = tracker.tick(time.monotonic() + 5)
        (out,) = [o for o in alert.evidence.outputs if o.kind == "network"]
        assert (out.where, out.bytes, out.measure) == ("203.0.113.9:22", SIZE, "relayed")
        assert any(p.startswith(f"proxy[{proxy.pid}]") for p in alert.evidence.processes), alert.evidence.processes
    finally:
        kill_all(reader, proxy)


def test_a_redirection_seen_at_the_open_counts_when_the_reader_is_gone_before_the_close(
        model: ModelFile, tmp_path: Path) -> None:  # noqa: F811
    """`sh -c "head -c N model > out"`: the shell made `out`, head wrote it and exited, and the close may be the
    shell's; what head held open for writing was read while it waited on its open of the model."""
    out = tmp_path / "out.bin"
    shell = subprocess.Popen(["sh", "-c", f'head -c {SIZE} "$1" > "$2"; sleep 30', "sh", model.path, str(out)])
    try:
        wait_for(lambda: out.exists() and out.stat().st_size == SIZE, timeout=10, what="head to write its half")
        head_gone = shell.pid + 10_000_000  # a pid no process has: head has exited by the time it is handled
        st = os.stat(model.path)
        tracker = tracker_for(model)
        tracker.access(AccessObservation("opened", model.path, st.st_dev, st.st_ino, SIZE,
                                         ProcessInfo(pid=head_gone, name="head", user="ana"),
                                         writes_to=(str(out),)), model)
        tracker.access(opened(model, head_gone, "read", SIZE), model)
        tracker.file(closed(out, shell.pid))  # the shell's close of its redirection
        (alert,) = tracker.tick(time.monotonic() + 5)
        assert str(out) in alert.paths
    finally:
        kill_all(shell)


def test_a_listener_that_is_the_readers_ancestor_is_never_its_relay(model: ModelFile) -> None:  # noqa: F811
    """A test runner, an IDE or a notebook server the reader talks to on 127.0.0.1 is not a proxy of its flow."""
    runner = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])  # stands for the runner: the reader's parent
    try:
        (reader,) = wait_for(lambda: children_of(runner.pid), timeout=10, what="the runner's child")
        tracker = tracker_for(model)
        tracker.access(opened(model, reader), model)
        tracker.access(opened(model, reader, "read", SIZE), model)
        tracker.connection(connection("opened", reader, "127.0.0.1", 8888, sent=SIZE, seconds=0.0,
                                      peer=runner.pid))
        assert runner.pid not in tracker.tainted_pids
        tracker.connection(connection("closed", runner.pid, "203.0.113.9", 443, sent=SIZE, seconds=1.0))
        assert tracker.tick(time.monotonic() + 5) == []
    finally:
        for child in children_of(runner.pid):
            os.kill(child, 9)
        kill_all(runner)
