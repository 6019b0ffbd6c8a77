"""Bad input (issue 14): a fork bomb next to a read, and a pipe passed over a Unix socket (SCM_RIGHTS).

The agent runs as the installed service runs it, with the lineage acceptance test's fixtures (the service,
ana and her protected model of about 15 MiB in ~/models). Every program below runs as ana, never root.

A fork storm beside a leak: ana's storm program forks a few thousand short-lived children over a few
seconds (bounded three ways: a count, a deadline, and RLIMIT_NPROC, so it cannot hurt the machine) while
she leaks half of the model. Twice: the storm as a program of its own beside `head -c HALF model > out`,
and the storm's children as siblings of the leak (`cat model | gzip -1 > out.gz`, both started by the
storming program, the parent that forks the storm): the hard case for joining siblings, over a hundred of
them live when the read is seen. Each leak raises its one model-lineage alert within 2 s of its end naming the
model, ana and the output; its flow lists only the leak's processes (the storm passed no data to it); the
agent keeps running, its status fresh, its resident memory bounded.

A pipe passed over a Unix socket: B, a receiver ana started earlier on its own (setsid: neither the
parent, a child nor a sibling of A), waits on a Unix socket. A makes a pipe, passes its read end to B with
SCM_RIGHTS and writes the model into the write end; B uploads whatever it reads to an HTTP server in a
network namespace the test creates, or gzips it into a file. One alert names the model, ana and B's
destination or file, B among the flow's processes. A missing alert says what the agent recorded of B.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import WEIGHTWARDEN
from tests.agent.test_lineage_acceptance import (  # noqa: F401 - the fixtures
    MODEL,
    InstalledAgent,
    NamespaceUnavailable,
    Person,
    expect_one,
    lineage_alerts,
    people,
    put_server_in_a_namespace,
    service,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

FORKS = 3000  # storm children in all
LIVE = 200  # storm children alive at once at most (the storm reaps before forking more)
NPROC = 400  # RLIMIT_NPROC for ana's storm: the kernel's own cap, whatever the program does
STORM_SECONDS = 8.0  # the storm stops by then, however many it forked
AFTER_LEAK_SECONDS = 1.5  # the storm goes on this long after the leak ended: through the agent's decision
RSS_GROWTH_LIMIT = 96 << 20  # the agent's resident memory may grow this much over the storm, no more
FLOW_PROCESSES_LIMIT = 8  # the leak's flow: a shell, head or cat and gzip; never the storm's hundreds

# Forks FORKS children (each lives a few milliseconds; one in four execs `true`, the rest exit as forked
# copies of this program), at most LIVE alive at once, for at most STORM_SECONDS. With a pipeline given
# (JSON: a list of argv, the last one's output to OUT), it starts the pipeline after a third of the storm,
# its stages children of this program like the storm's (siblings), storms on while it runs and for
# AFTER_LEAK_SECONDS after it ended. Prints one JSON line: forks made, the most alive at once, the
# pipeline's end (time.time()) and its pids.
STORM = textwrap.dedent("""
    import json, os, resource, subprocess, sys, time
    forks, live_cap, nproc, seconds, after = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), \\
        float(sys.argv[4]), float(sys.argv[5])
    pipeline = json.loads(sys.argv[6]) if len(sys.argv) > 7 else None
    out = sys.argv[7] if len(sys.argv) > 7 else None
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc if hard == resource.RLIM_INFINITY else min(nproc, hard),
                                               hard))
    deadline = time.monotonic() + seconds
    made, live, most, stages, ended, stop_at = 0, set(), 0, [], None, None
    def reap(block=False):
        while live:
            try:
                pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                live.clear()
                return
            if pid == 0:
                return
            live.discard(pid)
    print("storming", flush=True)
    while made < forks and time.monotonic() < deadline and (stop_at is None or time.monotonic() < stop_at):
        if pipeline is not None and not stages and made >= forks // 3:
            with open(out, "wb") as sink:  # closed here at once: no storm child forked later holds it
                previous = None
                for number, argv in enumerate(pipeline):
                    last = number == len(pipeline) - 1
                    stage = subprocess.Popen(argv, stdin=previous.stdout if previous else subprocess.DEVNULL,
                                             stdout=sink if last else subprocess.PIPE)
                    if previous is not None:
                        previous.stdout.close()  # the stages hold the pipe; no storm child will
                    stages.append(stage)
                    previous = stage
        if stages and ended is None and all(s.poll() is not None for s in stages):
            ended = time.time()
            stop_at = time.monotonic() + after
        if len(live) >= live_cap:
            reap(block=True)
        try:
            pid = os.fork()
        except BlockingIOError:  # RLIMIT_NPROC: wait for some to go
            reap(block=True)
            continue
        if pid == 0:
            try:
                if made % 4 == 0:
                    os.execv("/bin/true", ["true"])
                time.sleep(0.1)
            finally:
                os._exit(0)
        made += 1
        live.add(pid)
        most = max(most, len(live))
        reap()
    for stage in stages:
        stage.wait(timeout=60)
    if stages and ended is None:
        ended = time.time()
    reap(block=True)
    print(json.dumps({"forks": made, "most_alive": most, "leak_ended": ended,
                      "leak_pids": [s.pid for s in stages],
                      "leak_codes": [s.returncode for s in stages]}), flush=True)
""")


def as_person(person: Person, *argv: str) -> subprocess.Popen[str]:
    """Person.run, started in the background: their uid, gid and groups, their HOME, stdin /dev/null."""
    return subprocess.Popen(["setpriv", f"--reuid={person.uid}", f"--regid={person.gid}", "--init-groups", "--",
                             *argv], env={"HOME": str(person.home), "PATH": "/usr/bin:/bin", "USER": person.name},
                            cwd=person.home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as handle:
        for line in handle:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def status(agent: InstalledAgent) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([WEIGHTWARDEN, "status", "--json", "--mode", "system"], env=agent.env,
                            capture_output=True, text=True, timeout=60)
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}


def healthy(agent: InstalledAgent) -> dict[str, Any]:
    """The agent runs and says so: a fresh status (written since `status` was last asked, not stale)."""
    assert agent.process.poll() is None, f"the agent exited ({agent.process.returncode}): see {agent.log}"
    code, snapshot = status(agent)
    assert code == 0 and snapshot.get("running") is True and snapshot.get("stale") is False, snapshot
    return snapshot


@dataclass
class Storm:
    """What a storm did (its report: forks made, the most alive at once, its pipeline's end and pids) and the
    agent's resident memory before it and the most seen while it ran."""

    process: subprocess.Popen[str]
    before: int
    peak: int
    report: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def fork_storm(person: Person, agent: InstalledAgent, *pipeline: str) -> Iterator[Storm]:
    """The storm as `person` (with a pipeline of its own when `pipeline` gives one: JSON argv list, output),
    storming when the block starts; when it ends, the storm is waited for (it stops by itself) while the
    agent's memory is sampled."""
    before = resident_bytes(agent.process.pid)
    process = as_person(person, sys.executable, "-c", STORM, str(FORKS), str(LIVE), str(NPROC),
                        str(STORM_SECONDS), str(AFTER_LEAK_SECONDS if pipeline else 0), *pipeline)
    storm = Storm(process, before, before)
    out = err = ""
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "storming", \
            process.stderr.read() if process.stderr else ""
        yield storm

        def finished() -> bool:
            storm.peak = max(storm.peak, resident_bytes(agent.process.pid))
            return process.poll() is not None

        wait_for(finished, timeout=STORM_SECONDS + 30, what="the fork storm to stop by itself", interval=0.1)
    finally:
        if process.poll() is None:
            process.kill()
        out, err = process.communicate(timeout=10)  # and its pipes closed, whatever happened
    assert process.returncode == 0, err
    storm.report = json.loads(out.strip().splitlines()[-1])
    print(f"storm: {storm.report['forks']} forks, at most {storm.report['most_alive']} alive; agent RSS "
          f"{before >> 20} MiB before, {storm.peak >> 20} MiB at most")
    # a storm, not a handful (a slow machine may not make them all before the deadline)
    assert storm.report["forks"] >= FORKS // 2, storm.report
    assert storm.peak - before < RSS_GROWTH_LIMIT, f"the agent grew {(storm.peak - before) >> 20} MiB in the storm"


def expect_a_flow_of_the_leak(alert: dict[str, Any], leak: set[str]) -> None:
    evidence = alert["evidence"]
    names = {p.rpartition("[")[0] for p in evidence["processes"]}
    print(f"flow: {evidence['flow_processes']} processes: {', '.join(evidence['processes'])}")
    assert evidence["flow_processes"] <= FLOW_PROCESSES_LIMIT, evidence["processes"]
    assert names <= leak, evidence["processes"]


def test_a_fork_storm_beside_a_leak(service: tuple[InstalledAgent, Path],  # noqa: F811
                                   people: tuple[Person, Person]) -> None:  # noqa: F811
    """The storm a program of its own; the leak `head -c HALF model > out` in a shell."""
    agent, model = service
    ana, _ = people
    healthy(agent)
    out = ana.home / f"storm-part-{uuid.uuid4().hex[:6]}.bin"
    half = model.stat().st_size // 2
    with fork_storm(ana, agent) as storm:
        ana.run("sh", "-c", f"head -c {half} {model.relative_to(ana.home)} > {out.name}")
        ended = time.time()
        beside = storm.process.poll() is None  # the leak ran while the storm did (the decision may come after)
        alert = expect_one(agent, ana, "head -c HALF beside a fork storm", str(out), ended)
        assert beside, "the storm ended before the leak did: it was not beside the leak"
    expect_a_flow_of_the_leak(alert, {"sh", "head"})
    healthy(agent)


def test_a_fork_storm_of_siblings_of_the_reader(service: tuple[InstalledAgent, Path],  # noqa: F811
                                               people: tuple[Person, Person]) -> None:  # noqa: F811
    """The storm's children and the leak's `cat model | gzip -1 > out.gz` are children of one program."""
    agent, model = service
    ana, _ = people
    healthy(agent)
    out = ana.home / f"storm-{uuid.uuid4().hex[:6]}.gz"
    with fork_storm(ana, agent, json.dumps([["cat", str(model)], ["gzip", "-1"]]), str(out)) as storm:
        pass
    report = storm.report
    assert report["leak_codes"] == [0, 0] and out.stat().st_size > model.stat().st_size // 2, report
    alert = expect_one(agent, ana, "cat | gzip, siblings of a storm", str(out), report["leak_ended"])
    expect_a_flow_of_the_leak(alert, {"cat", "gzip"})
    healthy(agent)


# B: binds a Unix socket, says it is ready (its pid and parent) in READY, waits (at most 60 s) for one
# connection bringing a descriptor (SCM_RIGHTS) and passes on what it reads from it, as it reads, to DEST: an
# upload to http://DEST/fd (a chunked PUT) when DEST is HOST:PORT, else gzip -1 into the file DEST (not a
# model file: a plain copy is model-copy's alert, not lineage's). Then appends the bytes it passed to READY.
RECEIVER = textwrap.dedent("""
    import gzip, os, socket, sys
    path, ready, dest = sys.argv[1], sys.argv[2], sys.argv[3]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(60)
    with open(ready + ".part", "w") as note:
        note.write(f"{os.getpid()} {os.getppid()}\\n")
    os.rename(ready + ".part", ready)
    conn, _ = server.accept()
    _, fds, _, _ = socket.recv_fds(conn, 16, 4)
    conn.close()
    server.close()
    os.unlink(path)
    passed = 0
    with os.fdopen(fds[0], "rb", buffering=0) as source:
        if dest.startswith("/"):
            with gzip.open(dest, "wb", compresslevel=1) as sink:
                while block := source.read(1 << 20):
                    sink.write(block)
                    passed += len(block)
        else:
            host, _, port = dest.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=30) as up:
                up.sendall(b"PUT /fd HTTP/1.1\\r\\nHost: sink\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n")
                while block := source.read(1 << 20):
                    up.sendall(b"%x\\r\\n" % len(block) + block + b"\\r\\n")
                    passed += len(block)
                up.sendall(b"0\\r\\n\\r\\n")
                up.recv(1024)
    with open(ready, "a") as note:
        note.write(f"passed {passed}\\n")
""")

# A: makes a pipe, passes its read end over the Unix socket SOCKET (SCM_RIGHTS), keeps only the write end,
# and writes the model into it a MiB at a time (a steady leak of about a second). Prints its pid and parent.
SENDER = textwrap.dedent("""
    import os, socket, sys, time
    model, path = sys.argv[1], sys.argv[2]
    read_end, write_end = os.pipe()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
        peer.connect(path)
        socket.send_fds(peer, [b"pipe"], [read_end])
    os.close(read_end)
    print(os.getpid(), os.getppid(), flush=True)
    with open(model, "rb") as source, os.fdopen(write_end, "wb", buffering=0) as sink:
        while block := source.read(1 << 20):
            view = memoryview(block)
            while view:
                view = view[sink.write(view):]
            time.sleep(0.05)
""")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    """The acceptance test's PUT server, on a subnet of its own (other modules, and other runs of them on the
    machine, use theirs)."""
    try:
        with put_server_in_a_namespace(f"10.231.{160 + uuid.uuid4().int % 60}") as address:
            yield address
    except NamespaceUnavailable as why:
        pytest.skip(str(why))


@contextlib.contextmanager
def receiver(person: Person, socket_path: Path, dest: str) -> Iterator[tuple[int, int, Path]]:
    """B, started on its own (setsid -f: its parent exits, it is nobody's child or sibling in this test):
    (its pid, its parent's pid, the note it writes)."""
    ready = person.home / f"receiver-{uuid.uuid4().hex[:6]}.ready"
    script = person.home / "receiver.py"
    script.write_text(RECEIVER)
    os.chown(script, person.uid, person.gid)
    # the system's python3 (the receiver needs nothing else): a venv's interpreter may live where only root
    # may exec it a second time
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    person.run("sh", "-c", 'setsid -f "$@" </dev/null >/dev/null 2>&1', "sh", python, str(script),
               str(socket_path), str(ready), dest)
    text = wait_for(lambda: ready.exists() and ready.read_text(), timeout=15, what="the receiver to listen")
    pid, parent = (int(n) for n in text.split()[:2])
    try:
        yield pid, parent, ready
    finally:
        with contextlib.suppress(ProcessLookupError):  # ours (ana's, by its pid), if it is still waiting
            if Path(f"/proc/{pid}").exists() and os.stat(f"/proc/{pid}").st_uid == person.uid:
                os.kill(pid, signal.SIGKILL)
        socket_path.unlink(missing_ok=True)


def ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1 and len(chain) < 64:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                pid = int(handle.read().rpartition(b") ")[2].split()[1])
        except OSError:
            break
        chain.append(pid)
    return chain


def seen_passing(agent: InstalledAgent, dest: str, pid: int) -> str:
    """What the agent recorded of B (connections to DEST's address, or closes of the file DEST): a missing
    alert then says whether B's output was not seen, seen without its process, or seen and not joined."""
    address = dest.rpartition(":")[0]
    seen = []
    for e in agent.json_lines("events"):
        details, process = e.get("details") or {}, e.get("process") or {}
        if e["event"]["action"] == "network-connection" and (details.get("destination") or {}).get("address") \
                == address:
            seen.append(f"{process.get('name')}[{process.get('pid')}] {details.get('phase')} "
                        f"{details.get('bytes_sent')} bytes")
        elif (e.get("file") or {}).get("path") == dest or process.get("pid") == pid:
            seen.append(f"{e['event']['action']} by {process.get('name')}[{process.get('pid')}]")
    return f"recorded of the receiver (pid {pid}) and {dest}: {seen or 'nothing'}"


def pass_the_model_over_a_unix_socket(agent: InstalledAgent, model: Path, ana: Person, name: str,
                                      dest: str) -> dict[str, Any]:
    """A passes a pipe's read end to B (started earlier, unrelated) and writes the model into the pipe; B
    passes it on to `dest`. The one alert naming `dest`, with B among the flow's processes."""
    socket_path = ana.home / f"fd-{uuid.uuid4().hex[:6]}.sock"
    with receiver(ana, socket_path, dest) as (b_pid, b_parent, ready):
        b_ancestors = ancestors(b_pid)
        sender = ana.run(sys.executable, "-c", SENDER, str(model), str(socket_path))
        ended = time.time()
        a_pid, a_parent = (int(n) for n in sender.stdout.split()[:2])
        # unrelated: neither is the other's ancestor, and they have no parent in common (not siblings)
        assert a_pid not in b_ancestors and b_pid not in (a_parent, *ancestors(a_parent)), (b_ancestors, a_parent)
        assert b_parent != a_parent and (not b_ancestors or b_ancestors[0] != a_parent), (b_parent, a_parent)
        note = wait_for(lambda: "passed" in ready.read_text() and ready.read_text(), timeout=15,
                        what="the receiver to pass on what it read")
        assert int(note.split("passed")[1]) == model.stat().st_size, note
        try:
            alert = expect_one(agent, ana, name, dest, ended)
        except AssertionError as missing:
            raise AssertionError(f"{missing}; {seen_passing(agent, dest, b_pid)}") from None
    evidence = alert["evidence"]
    assert any(p.endswith(f"[{b_pid}]") for p in evidence["processes"]), evidence["processes"]
    assert evidence["output_bytes"] >= model.stat().st_size // 2 and MODEL in alert["message"], evidence
    mine = [a for a in lineage_alerts(agent) if a["evidence"].get("user") == ana.name
            and dest in [o.get("where") for o in a["evidence"].get("outputs", [])]]
    assert len(mine) == 1, [a["message"] for a in mine]
    return alert


def test_a_pipe_passed_over_a_unix_socket_to_an_unrelated_uploader(
        service: tuple[InstalledAgent, Path], people: tuple[Person, Person],  # noqa: F811
        server: tuple[str, int]) -> None:
    agent, model = service
    ana, _ = people
    address, port = server
    alert = pass_the_model_over_a_unix_socket(agent, model, ana, "pipe over SCM_RIGHTS, B uploads",
                                              f"{address}:{port}")
    assert alert["destination"]["address"] == address, alert["destination"]


def test_a_pipe_passed_over_a_unix_socket_to_an_unrelated_writer(
        service: tuple[InstalledAgent, Path], people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    out = ana.home / f"received-{uuid.uuid4().hex[:6]}.gz"
    alert = pass_the_model_over_a_unix_socket(agent, model, ana, "pipe over SCM_RIGHTS, B writes", str(out))
    assert alert["destination"]["path"] == str(out), alert["destination"]
