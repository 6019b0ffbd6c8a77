"""Filesystem marks (issue 13, Speed): what they cost write-heavy work, and how fast a copy onto a stick
mounted after the agent started is alerted.

Run by hand, as root, from the repository root:
    .venv/bin/python -m bench.fs_marks [--runs 3] [--files 100000] [--stick-runs 10] [--no-write]

(a) Overhead: a tarball of `--files` small files (200 folders, 40-1,600 bytes each) is extracted with
    `tar -x` onto a disk folder (/var/tmp, the root filesystem) and onto a tmpfs the benchmark mounts,
    without and with the agent running in system mode (filesystem marks on every local filesystem; every
    extracted file is reported, settled and examined). Without and with alternate, `--runs` times each; the
    medians are compared. The agent's CPU seconds per run are read from /proc.
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
import io
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.common import load_average, log
from bench.sections import write_section
from tests.agent.cli.helpers import write_config
from tests.agent.sensors.test_agent_activity import Agent
from tests.conftest import write_safetensors
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


def extract(tarball: Path, into: Path) -> float:
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(into)], check=True)
    return time.perf_counter() - started


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


def overhead(root: Path, models: Path, runs: int, files: int) -> dict[str, dict[str, list[float]]]:
    tarball = root / "tree.tar"
    make_tarball(tarball, files)
    ram = root / "ram"
    ram.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g", "wwbench", str(ram)], check=True)
    disk = Path(tempfile.mkdtemp(prefix="ww-fs-marks-", dir="/var/tmp"))
    results: dict[str, dict[str, list[float]]] = {place: {"without": [], "with": [], "agent_cpu": []}
                                                  for place in ("disk", "tmpfs")}
    try:
        for run in range(runs):
            for place, folder in (("disk", disk / "out"), ("tmpfs", ram / "out")):
                seconds = extract(tarball, folder)
                results[place]["without"].append(seconds)
                log(f"run {run + 1} {place} without the agent: {seconds:.2f} s")
            running = Running(root, models)
            try:
                for place, folder in (("disk", disk / "out"), ("tmpfs", ram / "out")):
                    before = cpu_seconds(running.agent.process.pid)
                    seconds = extract(tarball, folder)
                    time.sleep(2.0)  # what the agent still does about this run counts as its CPU
                    results[place]["with"].append(seconds)
                    results[place]["agent_cpu"].append(cpu_seconds(running.agent.process.pid) - before)
                    log(f"run {run + 1} {place} with the agent: {seconds:.2f} s, agent CPU "
                        f"{results[place]['agent_cpu'][-1]:.2f} s")
            finally:
                running.stop()
    finally:
        subprocess.run(["umount", "-l", str(ram)], check=False)
        shutil.rmtree(disk, ignore_errors=True)
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
        extraction = overhead(root, models, args.runs, args.files)
    rows = []
    verdicts = []
    for place, figures in extraction.items():
        without, with_agent = statistics.median(figures["without"]), statistics.median(figures["with"])
        ratio = with_agent / without
        met = ratio - 1 <= OVERHEAD_TARGET
        verdicts.append(met)
        rows.append(f"| tar -x {args.files:,} files onto {place} | {without:.2f} s | {with_agent:.2f} s | "
                    f"{ratio:.2f}x | {statistics.median(figures['agent_cpu']):.1f} s | "
                    f"{'PASS' if met else 'MISS'} (at most {1 + OVERHEAD_TARGET:.2f}x) |")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    markdown = "\n".join([
        "## Filesystem marks: write-heavy work and a stick mounted after start (bench/fs_marks.py)",
        "",
        f"One run, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Linux {platform.release()}; load average {load_before} before, "
        f"{load_average()} after (other people's work shares this machine).",
        "",
        f"Extraction, median of {args.runs} alternating runs without and with the agent (system mode, marks "
        "on every local filesystem; every extracted file reported, settled and examined):",
        "",
        "| work | without the agent | with the agent | ratio | agent CPU per run | target |",
        "|---|---|---|---|---|---|",
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
