"""The process cache: a process that has already exited is still named, with its parent chain; the
holders scan used in user mode; and the proc connector's counters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

from tests.agent.sensors.conftest import PYTHON, wait_for
from weightwarden.agent.processes import ProcessCache, holders, snapshot
from weightwarden.agent.sensors.processes import PollingProcessSensor


def test_exited_process_is_attributed_from_the_cache(cache: ProcessCache) -> None:
    # 50 ms: time for the exec event to be handled. (A process gone within microseconds of its exec is
    # named by the kernel's comm only; the access sensor holds opens so that never matters there.)
    short = subprocess.Popen(["sh", "-c", "exec sleep 0.05"])
    assert short.wait(timeout=10) == 0
    assert snapshot(short.pid) is None  # gone: /proc no longer knows it
    info = cache.process_info(short.pid, wait=1.0)
    assert info.name == "sleep" and info.executable and info.executable.endswith("/sleep")
    assert info.command_line == "sleep 0.05"
    assert info.exited is True and info.user == "root" and info.ppid == os.getpid()
    assert info.parents[0].pid == os.getpid()


def test_parent_chain_stops_at_the_session_leader() -> None:
    leader = subprocess.Popen(["setsid", "sh", "-c", "sleep 30; true"])
    try:
        sleeper = wait_for(lambda: psutil.Process(leader.pid).children(), timeout=10, what="sleep to start")[0]
        info = wait_for(lambda: (lambda i: i if i.name == "sleep" else None)(ProcessCache().process_info(sleeper.pid)),
                        timeout=10, what="sleep to be running")
        # sh became a session leader (setsid): the chain ends with it, not with us or init
        assert info.session_id == leader.pid
        assert [p.pid for p in info.parents] == [leader.pid] and info.parents[0].name == "sh"
    finally:
        os.killpg(leader.pid, signal.SIGKILL)  # sh and its sleep: setsid made sh their group leader
        leader.wait(timeout=10)


def test_unknown_pid_is_reported_as_such() -> None:
    info = ProcessCache().process_info(2**22 + 12345)
    assert info.name is None and info.exited is True


def test_holders_finds_a_process_with_the_file_open(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "weights.bin"
    target.write_bytes(b"x" * 8192)
    holder = subprocess.Popen([PYTHON, "-c", "import sys; f = open(sys.argv[1], 'rb'); f.read(100); "
                               "print('ok', flush=True); sys.stdin.readline()", str(target)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        with open(target, "rb"):  # our own descriptor is never reported
            assert list(holders(str(target))) == [holder.pid]
    finally:
        holder.kill()
        holder.wait(timeout=10)
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.stdout.close()


def test_polling_process_sensor_sees_new_and_gone_processes() -> None:
    cache = ProcessCache()
    sensor = PollingProcessSensor(cache, lambda health: None, "test", interval=0.05)
    sensor.start()
    try:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
        wait_for(lambda: cache.lookup(child.pid), timeout=10, what="the new process in the cache")
        child.wait(timeout=10)
        wait_for(lambda: (lambda s: s and s.exited)(cache.lookup(child.pid)), timeout=10,
                 what="the process to be marked exited")
        assert sensor.status().method == "psutil" and sensor.status().state == "degraded"
    finally:
        sensor.stop()


def test_late_exec_news_of_an_ended_process_keeps_what_was_seen_alive() -> None:
    """The proc connector can lag: an exec handled after the process died must not replace the command line
    seen while it was alive with a zombie's empty remains."""
    import subprocess
    import sys

    from tests.agent.cli.helpers import wait_for
    from weightwarden.agent.processes import ProcessCache, snapshot

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "marker-arg"],
                             stdin=subprocess.PIPE)
    try:
        cache = ProcessCache()
        wait_for(lambda: (snap := snapshot(child.pid)) is not None and "marker-arg" in (snap.command_line or ""),
                 timeout=10, what="the child to show its command line")
        cache.remember(child.pid)
        remembered = cache.lookup(child.pid)
        assert remembered is not None and "marker-arg" in (remembered.command_line or "")
        assert child.stdin is not None
        child.stdin.close()  # it exits; unreaped, it stays a zombie
        wait_for(lambda: (snap := snapshot(child.pid)) is not None and snap.exited, timeout=10,
                 what="the child to become a zombie")
        cache.on_exec(child.pid)
        seen = cache.lookup(child.pid)
        assert seen is not None and seen.exited
        assert seen.command_line is not None and "marker-arg" in seen.command_line
        assert seen.executable is not None
    finally:
        child.wait(timeout=10)
