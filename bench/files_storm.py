"""File sensor benchmark (issue 12): a storm of file writes under a watched root -> observations.

Run from the repository root (any user; inotify):
    .venv/bin/python -m bench.files_storm [--files 30000] [--dirs 30] [--rate 0] [--no-write]

The FileSensor runs in this process with a sink that only notes what arrives and when. A generator
process writes `--files` small files spread over `--dirs` directories (created, modified, closed: three
observations each), then deletes them (one each), at `--rate` files/s (0: as fast as it can). A prober
writes one file every 10 ms meanwhile; its latency is its write() call -> the sensor's "closed"
observation reaching the sink. Reported: observations/s from the storm's start to the last observation,
the time to drain after the generator finished, CPU seconds of this process (sensor threads; the main
thread only waits) per 1,000 observations, prober latency, overflows, and how many observations were
expected but never came (a lost event, or an overflow).
Results: docs/benchmarks.md section "files" (measured figures only).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.sections import write_section
from weightwarden.agent.sensors.files import FileObservation, FileSensor, SensorHealth

GENERATOR = r"""
import os, sys, time
root, files, dirs, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
paths = [os.path.join(root, f"d{i % dirs:03d}", f"f{i:06d}.bin") for i in range(files)]
start = time.time()
for number, path in enumerate(paths):
    with open(path, "wb") as f:
        f.write(b"x" * 64)
    if rate and (ahead := (number + 1) / rate - (time.time() - start)) > 0:
        time.sleep(ahead)
for path in paths:
    os.unlink(path)
print(f"{time.time() - start:.6f}", flush=True)
"""

PROBER = r"""
import os, sys, time
root, stop = sys.argv[1], sys.argv[2]
number = 0
while not os.path.exists(stop):
    path = os.path.join(root, f"probe{number:05d}.bin")
    began = time.time()
    with open(path, "wb") as f:
        f.write(b"p")
    print(f"{path} {began:.6f}", flush=True)
    number += 1
    time.sleep(0.01)
"""


class Sink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.overflows = 0
        self.closed_at: dict[str, float] = {}
        self.seen: set[str] = set()

    def add(self, observation: FileObservation) -> None:
        now = time.time()
        with self.lock:
            self.count += 1
            if observation.kind == "overflow":
                self.overflows += 1
            elif observation.kind == "closed":
                self.closed_at[observation.path] = now
            self.seen.add(observation.path)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    root = workdir / "watched"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    sink = Sink()
    health: list[SensorHealth] = []
    sensor = FileSensor([str(root)], sink.add, health.append)
    sensor.start()
    try:
        for i in range(args.dirs):
            (root / f"d{i:03d}").mkdir()
        deadline = time.monotonic() + 60
        while sink.count < args.dirs and time.monotonic() < deadline:  # each directory watched
            time.sleep(0.01)
        baseline = sink.count
        expected = baseline + 4 * args.files
        stop = workdir / "stop-prober"
        stop.unlink(missing_ok=True)
        cpu0, start = time.process_time(), time.time()
        probe_log = (workdir / "probes.txt").open("w+")  # a file, not a pipe: a full pipe would stop the prober
        prober = subprocess.Popen([sys.executable, "-c", PROBER, str(root), str(stop)], stdout=probe_log, text=True)
        generator = subprocess.Popen([sys.executable, "-c", GENERATOR, str(root), str(args.files), str(args.dirs),
                                      str(args.rate)], stdout=subprocess.PIPE, text=True)
        assert generator.stdout is not None
        generated = float(generator.stdout.read().strip())
        generator.wait()
        generator.stdout.close()
        finished = time.time()
        stop.touch()
        prober.wait()
        probe_log.seek(0)
        probes = [line.split() for line in probe_log.read().splitlines() if line.strip()]
        probe_log.close()
        # drained: every expected observation (probes: created, modified, closed) in, or 10 s without news
        wanted = expected + 3 * len(probes)
        last, last_count = time.time(), -1
        while sink.count < wanted and time.time() - last < 10:
            if sink.count != last_count:
                last, last_count = time.time(), sink.count
            time.sleep(0.005)
        done = last if sink.count < wanted else time.time()
        cpu = time.process_time() - cpu0
        # (the watchdog-based sensor before issue 12 had no status(): measured for the comparison)
        method = sensor.status().method if hasattr(sensor, "status") else "watchdog"
    finally:
        sensor.stop()
    observations = sink.count - baseline
    latencies = [sink.closed_at[path] - float(began) for path, began in probes if path in sink.closed_at]
    return {"files": args.files, "generated_s": generated, "drain_s": done - finished, "wall_s": done - start,
            "observations": observations, "per_s": observations / (done - start),
            "cpu_per_1000": 1000 * cpu / max(1, observations), "cpu_s": cpu,
            "missing": max(0, wanted - sink.count), "overflows": sink.overflows,
            "probes": len(probes), "probes_lost": len(probes) - len(latencies),
            "lat_p50_ms": 1000 * float(np.percentile(latencies, 50)) if latencies else float("nan"),
            "lat_p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else float("nan"),
            "method": method}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=30000)
    parser.add_argument("--dirs", type=int, default=30)
    parser.add_argument("--rate", type=float, default=0, help="files/s; 0: as fast as the generator can")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median run (by observations/s) is shown")
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--label", default="", help="what was measured, e.g. the implementation")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    began = time.time()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        results = [run(args, Path(scratch)) for _ in range(args.runs)]
    results.sort(key=lambda r: r["per_s"])
    r = results[len(results) // 2]
    rate = f"{args.rate:,.0f} files/s" if args.rate else "as fast as one Python process writes"
    rows = [
        ("observations / s (storm start -> last observation)",
         f"{r['per_s']:,.0f} ({r['observations']:,} in {r['wall_s']:.2f} s; generator {r['generated_s']:.2f} s)"),
        ("drain after the generator finished", f"{r['drain_s'] * 1000:,.0f} ms"),
        ("CPU of the sensor's process per 1,000 observations", f"{r['cpu_per_1000'] * 1000:.1f} ms "
                                                                f"({r['cpu_s']:.2f} s)"),
        ('prober write -> "closed" observation', f"median {r['lat_p50_ms']:.1f} ms, p99 {r['lat_p99_ms']:.1f} ms "
                                                 f"({r['probes']} probes, {r['probes_lost']} lost)"),
        ("overflows / observations expected but missing", f"{r['overflows']} / {r['missing']:,}"),
    ]
    table = "\n".join(f"| {a} | {b} |" for a, b in rows)
    md = f"""## File sensor: a storm of file writes (issue 12)

- **Measured:** {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(began))}{f" ({args.label})" if args.label else ""}
- **Reproduce:** `.venv/bin/python -m bench.files_storm --files {args.files} --dirs {args.dirs} --rate {args.rate:g}`
- **Machine:** {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()},
  Python {platform.python_version()}; load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end
- {args.files:,} files over {args.dirs} directories ({rate}), each created, written,
  closed and later deleted (4 observations each); a prober writes a file every 10 ms. Median of
  {args.runs} runs by observations/s. Method: {r["method"]}.

| measure | value |
|---|---|
{table}
"""
    print(md)
    for other in results:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in other.items()}, file=sys.stderr)
    if not args.no_write:
        write_section("files", md)


if __name__ == "__main__":
    main()
