"""Discovery over real trees: models written by the real libraries found among look-alikes and traps,
cache first, resumable through the store's state, rate-limited, at idle priority on its own thread."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agent.identify import builders
from tests.conftest import random_bytes_file, write_gguf, write_safetensors
from tests.waiting import wait_for
from weightwarden.agent.discovery import Discovery, DiscoveryDone, DiscoverySettings
from weightwarden.agent.discovery.discovery import STATE_KEY
from weightwarden.agent.discovery.priority import IDLE_NICE, IOPRIO_CLASS_IDLE, IOPRIO_CLASS_SHIFT, ioprio_get
from weightwarden.agent.discovery.roots import Mount, read_mounts
from weightwarden.agent.discovery.throttle import RateLimit
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.pipeline.files import ScanFound
from weightwarden.agent.scanner import Scanner


class Harness:
    """A Discovery with an in-memory state table and a list standing in for the ordered queue."""

    def __init__(self, roots: list[Path], *, settings: DiscoverySettings | None = None,
                 state: dict[str, str] | None = None, cache: FingerprintCache | None = None,
                 mounts: Callable[[], dict[str, Mount]] = dict) -> None:
        self.state = state if state is not None else {}
        self.emitted: list[Any] = []
        self.cache = cache if cache is not None else FingerprintCache()
        self.discovery = Discovery(
            Scanner(Identifier(), self.cache, workers=1), self.emitted.append, lambda: [str(r) for r in roots],
            settings or DiscoverySettings(), load_state=self.state.get, save_state=self.state.__setitem__,
            mounts=mounts)

    def found(self) -> dict[str, ScanFound]:
        return {os.path.basename(o.model.path): o for o in self.emitted if isinstance(o, ScanFound)}

    def done(self) -> list[DiscoveryDone]:
        return [o for o in self.emitted if isinstance(o, DiscoveryDone)]


def real_tree(root: Path) -> None:
    """Models by safetensors, gguf, numpy and torch (when installed) among look-alikes and traps."""
    write_safetensors(root / "code" / "proj" / "out" / "checkpoint-500" / "model.safetensors", seed=5)
    write_gguf(root / "stash" / "w.gguf")
    (root / "notebooks").mkdir(parents=True)
    builders.numpy_npz(root / "notebooks" / "weights.npz")
    builders.pickle_of_arrays(root / "notebooks" / "state.pkl")
    with contextlib.suppress(pytest.skip.Exception):  # torch is optional
        builders.pytorch_zip(root / "code" / "proj" / "out" / "last.pt")
    builders.generic_zip(root / "docs.zip")
    builders.json_text(root / "notes.json")
    builders.text_starting_with_gguf(root / "fake.gguf")
    builders.truncated_safetensors(root / "broken.safetensors")
    random_bytes_file(root / "noise.bin", 200_000)
    (root / "loop").symlink_to(root)
    os.mkfifo(root / "pipe")
    raw = os.fsencode(root) + b"/\xffname"
    os.makedirs(raw)
    write_safetensors(Path(os.fsdecode(raw + b"/adapter.safetensors")), seed=6)


def test_a_pass_finds_the_real_models_and_nothing_else_and_blocks_on_nothing(tmp_path: Path) -> None:
    real_tree(tmp_path)
    harness = Harness([tmp_path])

    assert harness.discovery.run_pass() is True

    found = harness.found()
    expected = {"model.safetensors", "w.gguf", "weights.npz", "state.pkl", "adapter.safetensors"}
    if (tmp_path / "code" / "proj" / "out" / "last.pt").exists():
        expected.add("last.pt")
    assert set(found) == expected
    assert all(f.finder.found_by == "discovery" and f.finder.where == str(tmp_path) and f.finder.pass_number == 1
               for f in found.values())
    assert not any(f.alert_copies for f in found.values())  # the first pass: what is there has no history
    (done,) = harness.done()
    assert done.complete and done.models == len(expected) and done.files == 10 + ("last.pt" in expected)
    skipped = harness.discovery.snapshot()["skipped"]
    assert skipped["symlinks"] == 1 and skipped["special"] == 1


def test_a_second_pass_reads_nothing_and_may_alert_copies(tmp_path: Path) -> None:
    real_tree(tmp_path)
    harness = Harness([tmp_path])
    harness.discovery.run_pass()
    first = harness.done()[0]
    harness.emitted.clear()

    harness.discovery.run_pass()

    (second,) = harness.done()
    assert second.pass_number == 2 and second.files == first.files
    assert second.bytes_read == 0 and second.cache_hits == second.files  # the cache answers every file
    assert all(f.alert_copies and f.finder.pass_number == 2 for f in harness.found().values())


def test_a_stopped_pass_resumes_after_the_last_file_without_walking_again(tmp_path: Path) -> None:
    for index in range(30):
        (tmp_path / f"d{index // 10}").mkdir(exist_ok=True)
        random_bytes_file(tmp_path / f"d{index // 10}" / f"f{index:02}.bin", 5000, seed=index)
    write_safetensors(tmp_path / "d1" / "m.safetensors")
    write_safetensors(tmp_path / "d2" / "z.safetensors", seed=2)
    state: dict[str, str] = {}
    first = Harness([tmp_path], state=state)

    assert first.discovery.run_pass(max_files=15) is False  # a bounded pass: stopped part way
    assert STATE_KEY in state and first.done() == []
    walked_first = first.discovery.files_seen

    restarted = Harness([tmp_path], state=dict(state))  # a new agent: a new cache, the same store
    assert restarted.discovery.run_pass() is True

    assert walked_first == 15 and restarted.discovery.files_seen == 32 - 15  # nothing walked twice
    (done,) = restarted.done()
    assert done.files == 32 and not done.complete  # this run met only the rest: nothing is pruned on it
    assert {*first.found(), *restarted.found()} == {"m.safetensors", "z.safetensors"}
    assert restarted.discovery.snapshot()["passes_done"] == 1


def test_the_pass_continues_from_the_root_it_was_in(tmp_path: Path) -> None:
    roots = [tmp_path / "one", tmp_path / "two"]
    for root in roots:
        for index in range(5):
            random_bytes_file(root / f"f{index}", 100, seed=index)
    state: dict[str, str] = {}
    Harness(roots, state=state).discovery.run_pass(max_files=7)
    resumed = Harness(roots, state=state)
    resumed.discovery.run_pass()
    assert resumed.discovery.files_seen == 3


def test_the_rate_limit_holds(tmp_path: Path) -> None:
    for index in range(40):
        random_bytes_file(tmp_path / f"f{index:02}", 64, seed=index)
    slow = Harness([tmp_path], settings=DiscoverySettings(files_per_second=20.0))
    started = time.monotonic()

    slow.discovery.run_pass()

    # A one-second burst (20 files) is allowed, then 20 files/s: the other 20 take at least a second.
    assert slow.done()[0].files == 40
    assert time.monotonic() - started >= (40 - 20) / 20 * 0.95


def test_the_byte_limit_is_a_token_bucket_over_what_was_read() -> None:
    now = [0.0]
    limit = RateLimit(0, 1000, clock=lambda: now[0])
    assert limit.take(1, 1000) == 0.0  # the first second's budget
    assert limit.take(1, 500) == pytest.approx(0.5)
    now[0] = 10.0  # idle for a while: at most one second is saved up
    assert limit.take(1, 1500) == pytest.approx(0.5)
    files = RateLimit(10, 0, clock=lambda: now[0])
    waits = [files.take(1) for _ in range(30)]
    assert waits[9] == 0.0 and waits[29] == pytest.approx(2.0)


def test_the_discovery_thread_runs_at_idle_cpu_and_io_priority(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "m.safetensors")
    gate = threading.Event()
    seen: dict[str, int] = {}
    harness = Harness([tmp_path])
    original: Callable[..., Any] = harness.discovery._look

    def look(*args: Any) -> None:  # runs on the discovery thread: read its priorities from /proc and ioprio_get
        tid = threading.get_native_id()
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        seen["nice"] = int(fields[16])  # field 19 of stat: nice (fields counted after the comm)
        seen["io_class"] = ioprio_get(tid) >> IOPRIO_CLASS_SHIFT
        seen["main_nice"] = os.getpriority(os.PRIO_PROCESS, threading.main_thread().native_id or 0)
        original(*args)
        gate.set()

    harness.discovery._look = look  # type: ignore[method-assign]
    harness.discovery.start()
    try:
        wait_for(gate.is_set, timeout=30, what="discovery to look at a file")
        wait_for(lambda: harness.done(), timeout=30, what="the pass to finish")
    finally:
        harness.discovery.stop()
    assert seen["nice"] == IDLE_NICE and seen["io_class"] == IOPRIO_CLASS_IDLE
    assert seen["main_nice"] != IDLE_NICE  # per thread: the rest of the agent keeps its priority
    status = harness.discovery.status()
    assert status.name == "discovery" and status.state in ("running", "stopped")
    assert harness.discovery.snapshot()["priority"]["idle"] is True


def test_the_thread_waits_for_the_start_up_scan_and_then_for_the_interval(tmp_path: Path) -> None:
    random_bytes_file(tmp_path / "f", 10)
    ready = threading.Event()
    harness = Harness([tmp_path], settings=DiscoverySettings(interval_seconds=3600))
    harness.discovery._ready = ready
    harness.discovery.start()
    try:
        wait_for(lambda: harness.discovery.phase == "waiting for the start-up scan", timeout=10, what="waiting")
        assert harness.done() == []
        ready.set()
        wait_for(lambda: harness.discovery.phase == "idle until the next pass", timeout=30, what="one pass")
        assert len(harness.done()) == 1 and 3500 < harness.discovery.seconds_until_due() <= 3600
    finally:
        harness.discovery.stop()


def test_not_a_model_verdicts_cost_bytes_not_hundreds_of_bytes_per_file() -> None:
    import tracemalloc

    from weightwarden.agent.fingerprint import CachedResult, FileKey
    from weightwarden.agent.fingerprint.cache import NOT_A_MODEL

    cache = FingerprintCache({FileKey(1, 0, 10, 5): CachedResult(None)})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for inode in range(1, 200_001):
            cache.put(FileKey(1, inode, 100, 1_700_000_000_000_000_000 + inode), CachedResult(None))
        cache.drain_unsaved()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown / 200_000 < 40  # a dict entry per file costs about 250 bytes
    assert cache.get(FileKey(1, 0, 10, 5)) is NOT_A_MODEL and cache.get(FileKey(1, 7, 100, 1_700_000_000_000_000_007))
    assert cache.get(FileKey(1, 7, 100, 1)) is None and len(cache) == 200_001
    model = CachedResult("safetensors", "a" * 64)
    cache.put(FileKey(1, 7, 100, 1_700_000_000_000_000_007), model)  # the same key, now a model
    assert cache.get(FileKey(1, 7, 100, 1_700_000_000_000_000_007)) == model
    assert cache.drain_unsaved() == {FileKey(1, 7, 100, 1_700_000_000_000_000_007): model}


def mounted_overlay(lower: Path, upper: Path, at: Path) -> Path:
    work = upper.parent / (upper.name + "-work")
    for folder in (lower, upper, work, at):
        folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                             f"lowerdir={lower},upperdir={upper},workdir={work}", str(at)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount an overlay here: {result.stderr.strip()}")
    return at


def test_an_overlay_is_counted_once_and_one_over_other_folders_is_walked(tmp_path: Path) -> None:
    """An overlay whose layers lie in the walked tree shows its models a second time: it is left out (each
    model found once, by its own path); one whose lower layer lies outside is walked like any folder."""
    if os.geteuid() != 0:
        pytest.skip("mounting an overlay needs root")
    home, outside = tmp_path / "home", tmp_path / "outside"
    write_safetensors(home / "layers" / "lower" / "llama" / "model.safetensors", seed=21)
    write_safetensors(outside / "base" / "image.safetensors", seed=22)
    views = [mounted_overlay(home / "layers" / "lower", home / "layers" / "upper", home / "merged"),
             mounted_overlay(outside, home / "layers" / "upper2", home / "container")]
    try:
        harness = Harness([home], mounts=read_mounts)
        assert harness.discovery.run_pass() is True
        found = sorted(o.model.path for o in harness.emitted if isinstance(o, ScanFound))
        assert found == [str(home / "container" / "base" / "image.safetensors"),
                         str(home / "layers" / "lower" / "llama" / "model.safetensors")]
        assert harness.discovery.snapshot()["skipped"]["mounts"] == 1
    finally:
        for view in views:
            subprocess.run(["umount", "-l", str(view)], check=False)


def test_a_mount_that_goes_away_mid_pass_ends_its_part_and_the_pass_goes_on(tmp_path: Path) -> None:
    """A stick pulled (a lazy unmount) while the pass walks it: the rest of the stick is simply not there,
    nothing raises or hangs, and what comes after it in the tree is still found."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    home = tmp_path / "home"
    stick = home / "a-stick"
    stick.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "wwtest", str(stick)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        for index in range(200):
            random_bytes_file(stick / f"f{index:03}", 64, seed=index)
        write_safetensors(home / "z-after" / "model.safetensors", seed=31)
        harness = Harness([home], settings=DiscoverySettings(files_per_second=100.0), mounts=read_mounts)
        result: list[bool] = []
        walker = threading.Thread(target=lambda: result.append(harness.discovery.run_pass()))
        walker.start()
        wait_for(lambda: str(harness.discovery.position or "").startswith(str(stick) + "/f1"), timeout=30,
                 what="the pass to be half way through the stick")
        subprocess.run(["umount", "-l", str(stick)], check=True)
        walker.join(timeout=60)
        assert not walker.is_alive() and result == [True]
        assert set(harness.found()) == {"model.safetensors"}
        (done,) = harness.done()
        assert done.complete and done.files < 200  # the stick's last files were gone when their turn came
    finally:
        subprocess.run(["umount", "-l", str(stick)], check=False, capture_output=True)
