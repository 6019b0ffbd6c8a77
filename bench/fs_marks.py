"""Filesystem marks (issue 13, Speed): what they cost write-heavy work, and how fast a copy onto a stick
mounted after the agent started is alerted.

Run by hand, as root, from the repository root:
    .venv/bin/python -m bench.fs_marks [--runs 3] [--files 100000] [--wheel torch] [--disk]
                                       [--stick-runs 10] [--no-write]

(a) Overhead on write-heavy jobs, each run without anything, under bare marks, then with the agent
    running in system mode (filesystem marks on every local filesystem):
    - `tar -x` of a tarball of `--files` small files (200 folders, 40-1,600 bytes each: the worst case,
      one event for very little work) onto a tmpfs the benchmark mounts (with `--disk`, also onto
      /var/tmp: on a shared machine the disk's figures move several times over between identical runs);
    - `pip install --target` of a large wheel onto the tmpfs: `--wheel` names an installed distribution
      (torch by default) that is packed as its publisher ships it.
    "Bare marks" is a fanotify group with the agent's flags and mask whose reader takes the events and
    looks at none: what the kernel itself charges the writer, the floor of any fanotify sensor. Each job's
    own CPU (user + system, from rusage) is reported beside the wall clock, and the agent's CPU per run.
(b) Latency: per run, a fresh loop-mounted ext4 "stick" is mounted at /media/wwbench-<tag>/STICK while
    the agent runs (the config names neither), a protected 4.6 MB safetensors model is copied onto it with
    `cp`, and the clock runs from `cp` returning to the model-copy alert readable in the store (polled
    every 10 ms). The copy starts at once after `mount` returns: whether the mark is in place yet or not
    (then the rescan of the new mount finds it), the alert must come.
Results: docs/benchmarks.md section "fs-marks". The machine's load is printed with them: on a shared
2-core machine every figure moves with what else runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench.common import MB, load_average, log
from bench.sections import write_section
from tests.agent.cli.helpers import write_config
from tests.agent.sensors.test_agent_activity import Agent
from tests.conftest import write_safetensors
from weightwarden.agent.sensors import fanotify as fan
from weightwarden.agent.sensors import fs_writes
from weightwarden.agent.store import Store
from weightwarden.agent.store.review_queries import AlertFilter

OVERHEAD_TARGET = 0.05
LATENCY_TARGET_SECONDS = 1.0
POLL_SECONDS = 0.01


def make_tarball(path: Path, files: int) -> None:
    folders = 200
    with tarfile.open(path, "w") as tar:
        for index in range(files):
            data = f"line {index}\n".encode() * (4 + index % 160)
            info = tarfile.TarInfo(f"tree/d{index % folders:03}/f{index:06}.txt")
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))


def make_wheel(path: Path, distribution: str) -> int:
    """A wheel of an installed distribution, as its publisher would ship it (deflated, its RECORD and
    WHEEL): the large wheel a user installs. Returns the number of files in it."""
    dist = metadata.distribution(distribution)
    base = Path(str(dist.locate_file("")))
    files = [f for f in dist.files or [] if not str(f).startswith("..") and (base / f).is_file()]
    info = next(f.parent for f in files if f.name == "METADATA")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for file in files:
            if file.parent == info and file.name in ("RECORD", "INSTALLER", "direct_url.json", "WHEEL"):
                continue
            wheel.write(base / file, str(file))
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: false\n"
                                        f"Tag: {_wheel_tag()}\n")
        wheel.writestr(f"{info}/RECORD", "")
    return len(files)


def _wheel_tag() -> str:
    version = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return f"{version}-{version}-linux_{platform.machine()}"


@dataclass(frozen=True)
class Work:
    """One write-heavy job: its label and the command that does it into a folder."""

    label: str
    place: Path  # a folder on the filesystem it writes to
    command: Callable[[Path], list[str]]


@dataclass
class Figures:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the job's own CPU (user + system): what marks cost it


def timed(work: Work, into: Path) -> tuple[float, float]:
    """Run `work` into a fresh `into`: its wall-clock seconds and its processes' CPU seconds."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    subprocess.run(["sync"], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(work.command(into), check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Running:
    """The agent in system mode (filesystem marks), protecting one model, until stopped."""

    def __init__(self, root: Path, models: Path) -> None:
        data = root / f"data-{secrets.token_hex(3)}"
        data.mkdir()
        self.config = write_config(root / "config.toml", data_dir=data, protected=[models], watched=[])
        self.database = data / "weightwarden.db"
        self.agent = Agent(self.config, dict(os.environ), "--mode", "system")
        deadline = time.monotonic() + 60
        while "scan-finished" not in self.agent.actions():
            if time.monotonic() > deadline:
                raise RuntimeError("the agent did not finish its first inventory within 60 s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.agent.stop()


class BareMarks:
    """The floor any fanotify sensor pays: a group with the agent's flags and mask on the same filesystems,
    whose reader takes the events every 10 ms and looks at none of them."""

    def __init__(self, places: list[Path]) -> None:
        self._fd = fan.init(fs_writes.INIT_FLAGS | fan.FAN_UNLIMITED_QUEUE)
        for place in places:
            fan.mark(self._fd, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, fs_writes.RENAME_MASK, str(place))
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while not self._stop.wait(fs_writes.GATHER_SECONDS):
            with contextlib.suppress(BlockingIOError):
                while os.read(self._fd, fs_writes.READ_BYTES):
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._reader.join(timeout=10)
        os.close(self._fd)


CONDITIONS = ("without", "bare marks", "with the agent")


def overhead(root: Path, models: Path, runs: int, works: list[Work]) -> dict[str, dict[str, Figures]]:
    """Each run: every job without anything, under bare marks, then under the running agent."""
    results = {work.label: {condition: Figures() for condition in CONDITIONS} for work in works}
    agent_cpu: dict[str, list[float]] = {work.label: [] for work in works}

    def each(run: int, condition: str, agent: Running | None = None) -> None:
        for work in works:
            before = cpu_seconds(agent.agent.process.pid) if agent else 0.0
            wall, cpu = timed(work, work.place / "out")
            if agent is not None:
                time.sleep(2.0)  # what the agent still does about this run counts as its CPU
                agent_cpu[work.label].append(cpu_seconds(agent.agent.process.pid) - before)
            figures = results[work.label][condition]
            figures.wall.append(wall)
            figures.cpu.append(cpu)
            log(f"run {run + 1} {work.label}, {condition}: {wall:.2f} s, its CPU {cpu:.2f} s")

    for run in range(runs):
        each(run, "without")
        bare = BareMarks(sorted({w.place for w in works}))
        try:
            each(run, "bare marks")
        finally:
            bare.stop()
        running = Running(root, models)
        try:
            each(run, "with the agent", running)
        finally:
            running.stop()
    for work in works:
        results[work.label]["agent CPU"] = Figures(cpu=agent_cpu[work.label])
    return results


def stick_latency(root: Path, models: Path, model: Path, runs: int) -> list[float]:
    running = Running(root, models)
    store = Store(running.database, read_only=True)
    media = Path("/media") / f"wwbench-{secrets.token_hex(3)}"
    point = media / "STICK"
    point.mkdir(parents=True)
    image = root / "stick.img"
    seconds: list[float] = []
    try:
        for run in range(runs):
            with image.open("wb") as handle:
                handle.truncate(32 << 20)
            subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
            after = store.review.max_sequence()
            subprocess.run(["mount", "-o", "loop", str(image), str(point)], check=True)
            target = point / f"weights-{run}.safetensors"
            subprocess.run(["cp", str(model), str(target)], check=True)
            ended = time.time()
            deadline = time.monotonic() + 30
            seen = None
            while seen is None and time.monotonic() < deadline:
                for row in store.review.alerts_after(after, AlertFilter(every_update=True)):
                    if row.rule == "model-copy" and str(target) in row.record_json:
                        seen = time.time()
                        break
                else:
                    time.sleep(POLL_SECONDS)
            subprocess.run(["umount", str(point)], check=True)
            if seen is None:
                raise RuntimeError(f"no model-copy alert for {target} within 30 s")
            seconds.append(seen - ended)
            log(f"stick run {run + 1}: {(seen - ended) * 1000:.0f} ms")
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
        shutil.rmtree(media, ignore_errors=True)
        store.close()
        running.stop()
    return seconds


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--stick-runs", type=int, default=10)
    parser.add_argument("--disk", action="store_true", help="also extract onto a disk folder (/var/tmp)")
    parser.add_argument("--wheel", default="torch", help="installed distribution to pack as the large wheel "
                                                         "('' to leave the wheel out)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.fs_marks needs root (filesystem marks, loop and tmpfs mounts)", file=sys.stderr)
        return 2
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="ww-fs-marks-") as tmp:
        root = Path(tmp)
        models = root / "models"
        model = write_safetensors(models / "llama" / "model.safetensors", rows=12_000,
                                  seed=secrets.randbelow(2**31))
        latencies = stick_latency(root, models, model, args.stick_runs)
        ram, disk = root / "ram", Path(tempfile.mkdtemp(prefix="ww-fs-marks-", dir="/var/tmp"))
        ram.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "wwbench", str(ram)], check=True)
        try:
            tarball = root / "tree.tar"
            make_tarball(tarball, args.files)
            works = [Work(f"tar -x {args.files:,} small files onto tmpfs", ram,
                          lambda into: ["tar", "-xf", str(tarball), "-C", str(into)])]
            if args.disk:  # on a shared machine its wall clock (and even tar's CPU) moves 7x between runs
                works.append(Work(f"tar -x {args.files:,} small files onto disk", disk,
                                  lambda into: ["tar", "-xf", str(tarball), "-C", str(into)]))
            if args.wheel:
                wheel = disk / f"{args.wheel}-0-{_wheel_tag()}.whl"
                count = make_wheel(wheel, args.wheel)
                size = wheel.stat().st_size / MB
                works.append(Work(f"pip install of a {size:,.0f} MB wheel ({args.wheel}, {count:,} files) "
                                  "onto tmpfs", ram,
                                  lambda into: [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                                                "--no-index", "--target", str(into), str(wheel)]))
            extraction = overhead(root, models, args.runs, works)
        finally:
            subprocess.run(["umount", "-l", str(ram)], check=False)
            shutil.rmtree(disk, ignore_errors=True)
    rows = []
    verdicts = []
    for label, figures in extraction.items():
        wall = {c: statistics.median(figures[c].wall) for c in CONDITIONS}
        cpu = {c: statistics.median(figures[c].cpu) for c in CONDITIONS}
        ratio, cpu_ratio = wall["with the agent"] / wall["without"], cpu["with the agent"] / cpu["without"]
        floor = cpu["bare marks"] / cpu["without"]
        met = ratio - 1 <= OVERHEAD_TARGET
        verdicts.append(met)
        rows.append(f"| {label} | {wall['without']:.2f} s | {wall['bare marks']:.2f} s | "
                    f"{wall['with the agent']:.2f} s | **{ratio:.2f}x** | {cpu['without']:.2f} s / "
                    f"{cpu['bare marks']:.2f} s / {cpu['with the agent']:.2f} s: {floor:.2f}x / {cpu_ratio:.2f}x | "
                    f"{statistics.median(figures['agent CPU'].cpu):.1f} s | "
                    f"{'PASS' if met else 'MISS'} (at most {1 + OVERHEAD_TARGET:.2f}x) |")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    markdown = "\n".join([
        "## Filesystem marks: write-heavy work and a stick mounted after start (bench/fs_marks.py)",
        "",
        f"One run, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Linux {platform.release()}; load average {load_before} before, "
        f"{load_average()} after (other people's work shares this machine).",
        "",
        f"Write-heavy work, median of {args.runs} alternating runs: without anything; under bare marks (a "
        "fanotify group with the agent's flags and mask whose reader takes the events and looks at none: "
        "what the kernel charges the writer, the floor of any such sensor); with the agent (system mode, "
        "marks on every local filesystem). The job's own CPU (user + system) is shown beside the wall clock: "
        "on this shared machine the disk's wall clock moves with other people's writeback.",
        "",
        "| work | without | bare marks | with the agent | ratio | job CPU: without / bare / agent: floor / agent "
        "| agent CPU per run | target |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Copy onto a loop ext4 mounted at /media/USER/STICK after the agent started -> model-copy alert stored "
        f"({len(latencies)} runs, a fresh filesystem each): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms: {'PASS' if p99 < LATENCY_TARGET_SECONDS else 'MISS'} "
        f"(target p99 < {LATENCY_TARGET_SECONDS:.0f} s).",
    ])
    print(markdown)
    if not args.no_write:
        write_section("fs-marks", markdown)
    return 0 if all(verdicts) and p99 < LATENCY_TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
