"""Event throughput through the agent's pipeline, and latency from a sensor's observation to the stored record.

A real Agent (user mode, default settings but for its folders) protects four real safetensors files.
`--threads` threads play the access sensor: each hands over `--events / --threads` "read" observations of
those models by processes of its own session, as fast as it can, through the entry point the sensors use.
Everything else is the product: the observation becomes an Event, passes the detection rules, and the
batched writer commits it. Measured: records stored per second (first observation to last commit) and,
per record, the time from the observation being handed over to its commit (median, p99).

    .venv/bin/python -m bench.dispatch_throughput [--events 20000] [--threads 4] [--baseline-checkout DIR]

With `--baseline-checkout DIR` (another checkout of this repository, e.g. a git worktree of an older
commit) the same measurement runs against that code too, in the same run, and the section in
docs/benchmarks.md ("dispatch") shows both side by side with their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.baseline import REPO, describe, environment

TOPIC = "dispatch"
COMMAND = ".venv/bin/python -m bench.dispatch_throughput"


def measure(events: int, threads: int, rate: float) -> dict[str, Any]:
    """Both phases against whichever weightwarden this interpreter imports: a burst (as fast as the
    threads can hand over: throughput), then a paced stream of the same size at `rate` observations per
    second (what a busy machine sends: latency without a backlog of our own making)."""
    from tests.agent.cli.helpers import write_config
    from tests.conftest import write_safetensors
    from weightwarden.agent.config import load_config
    from weightwarden.agent.events import Event, ProcessInfo
    from weightwarden.agent.sensors.access import AccessObservation
    from weightwarden.agent.service import Agent

    with tempfile.TemporaryDirectory(prefix="ww-bench-dispatch-") as scratch:
        root = Path(scratch)
        models = [write_safetensors(root / "models" / f"m{i}" / "model.safetensors", seed=i) for i in range(4)]
        (root / "data").mkdir()
        config_file = write_config(root / "config.toml", data_dir=root / "data", protected=[root / "models"],
                                   watched=[])
        text = config_file.read_text().replace("[store]\nflush_seconds = 0.05\n", "")  # product defaults
        config_file.write_text(text)
        agent = Agent(load_config(config_file, mode="user"))
        stop = threading.Event()
        runner = threading.Thread(target=agent.run, args=(stop,), name="bench-agent")
        runner.start()
        deadline = time.monotonic() + 60
        while len(agent.inventory) < len(models) and time.monotonic() < deadline:
            time.sleep(0.05)
        emit = sensor_entry(agent)
        total = 2 * events
        handed: list[float] = [0.0] * total
        stored: list[float] = [0.0] * total
        phase_done = [threading.Event(), threading.Event()]
        counts = [0, 0]
        base_pid = 1_000_000
        written = agent.evidence.written

        def on_written(records: list[Any]) -> None:
            now = time.perf_counter()
            for record in records:
                if isinstance(record, Event) and record.process is not None and record.process.pid >= base_pid:
                    index = record.process.pid - base_pid
                    stored[index] = now
                    phase = index // events
                    counts[phase] += 1
                    if counts[phase] >= events:
                        phase_done[phase].set()
            written(records)

        agent.evidence.written = on_written  # type: ignore[method-assign]
        stats = [(str(p), os.stat(p)) for p in models]

        def feed(worker: int, phase: int, start: float) -> None:
            for number, index in enumerate(range(phase * events + worker, (phase + 1) * events, threads)):
                if phase == 1:  # paced: each thread its share of `rate`, on a schedule (no drift)
                    delay = start + number * threads / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                path, info = stats[index % len(stats)]
                process = ProcessInfo(pid=base_pid + index, name="python3", executable="/usr/bin/python3",
                                      command_line="python3 train.py", user="ana", uid=1000,
                                      session_id=500 + worker)
                observation = AccessObservation("read", path, info.st_dev, info.st_ino, info.st_size, process,
                                                bytes_read=info.st_size, bytes_read_source="fd-position",
                                                mapped=False, seconds_open=0.01)
                handed[index] = time.perf_counter()
                emit(observation)

        def run_phase(phase: int) -> tuple[float, bool]:
            started = time.perf_counter()
            feeders = [threading.Thread(target=feed, args=(w, phase, started)) for w in range(threads)]
            for feeder in feeders:
                feeder.start()
            for feeder in feeders:
                feeder.join()
            complete = phase_done[phase].wait(120)
            return max(stored[phase * events:(phase + 1) * events]) - started, complete

        burst_seconds, burst_complete = run_phase(0)
        paced_seconds, paced_complete = run_phase(1)
        stop.set()
        runner.join(timeout=120)
        latencies = sorted(s - h for s, h in zip(stored[events:], handed[events:], strict=True) if s)
        return {"events": events, "threads": threads, "rate": rate, "complete": burst_complete and paced_complete,
                "events_per_second": counts[0] / burst_seconds, "paced_seconds": paced_seconds,
                "latency_median": statistics.median(latencies),
                "latency_p99": latencies[int(len(latencies) * 0.99) - 1]}


def sensor_entry(agent: Any) -> Any:
    """Where a sensor hands an access observation over: the ordered queue, or (before it) the old callback."""
    if hasattr(agent, "observations"):
        return agent.observations.emitter("access")
    return agent.activity._access


def run_child(checkout: Path | None, events: int, threads: int, rate: float) -> dict[str, Any]:
    """The measurement in a fresh interpreter, importing weightwarden from `checkout` when given."""
    with environment(checkout) as env, tempfile.TemporaryDirectory(prefix="ww-bench-") as scratch:
        out = Path(scratch) / "result.json"
        subprocess.run([sys.executable, "-m", "bench.dispatch_throughput", "--child", str(out), "--events",
                        str(events), "--threads", str(threads), "--rate", str(rate)], cwd=REPO, env=env, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        result["code"] = describe(checkout)
        return result


def markdown(results: list[dict[str, Any]]) -> str:
    first = results[0]
    lines = [
        "## Dispatch: events through the pipeline (issue 12)", "",
        f"`{COMMAND} --baseline-checkout DIR`: a real Agent (user mode, product defaults but for its folders: "
        "the batched writer commits at least every 0.5 s) protecting four real safetensors files; "
        f"{first['threads']} threads play the access sensor and hand over \"read\" observations through the "
        "sensors' entry point; each becomes an Event, passes every built-in detection rule and is committed. "
        f"Burst: {first['events']:,} observations as fast as the threads can hand them over; records/s = "
        "records committed / (last commit - first hand-over). Paced: another "
        f"{first['events']:,} at {first['rate']:,.0f}/s; latency = hand-over to commit, per record.", "",
        "| code | burst records/s | paced latency median | paced latency p99 | all stored |",
        "|---|---:|---:|---:|---|"]
    for result in results:
        lines.append(f"| {result['code']} | {result['events_per_second']:,.0f} | "
                     f"{result['latency_median'] * 1000:.0f} ms | {result['latency_p99'] * 1000:.0f} ms | "
                     f"{'yes' if result['complete'] else 'NO'} |")
    if len(results) == 2:
        before, after = results[1], results[0]
        lines += ["", f"Ratio (this code / baseline): throughput "
                      f"{after['events_per_second'] / before['events_per_second']:.2f}x, paced p99 latency "
                      f"{after['latency_p99'] / before['latency_p99']:.2f}x (measured in one run, load average "
                      f"{_load()} at the end)."]
    return "\n".join(lines)


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1000.0, help="observations/s of the paced phase")
    parser.add_argument("--baseline-checkout", type=Path, help="another checkout to measure in the same run")
    parser.add_argument("--child", metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.child:
        Path(args.child).write_text(json.dumps(measure(args.events, args.threads, args.rate)))
        return 0
    results = [run_child(None, args.events, args.threads, args.rate)]
    if args.baseline_checkout:
        results.append(run_child(args.baseline_checkout, args.events, args.threads, args.rate))
    text = markdown(results)
    print(text)
    if not args.no_write:
        from bench.sections import write_section
        write_section(TOPIC, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
