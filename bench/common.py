"""What every benchmark shares: the result shape (JSON for run_all), timing and formatting helpers."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DIR = "/var/tmp/ww-bench"
MB = 1_000_000  # throughput is in MB/s of 10^6 bytes, like dd and most storage figures
MIB = 1 << 20
GIB = 1 << 30


@dataclass
class Target:
    """One of the issue's speed targets, measured. `met` None means informational (no goal set)."""

    name: str
    measured: str
    goal: str
    met: bool | None

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "info"
        return "PASS" if self.met else "MISS"


@dataclass
class BenchResult:
    """What one benchmark reports: a table of figures, the targets, free-text notes and raw numbers."""

    name: str
    title: str
    description: str
    headers: list[str]
    rows: list[list[str]]
    targets: list[Target]
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        data = json.loads(text)
        data["targets"] = [Target(**target) for target in data["targets"]]
        return cls(**data)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dir", default=DEFAULT_DIR,
                        help=f"where the test data is created and reused (default {DEFAULT_DIR})")
    parser.add_argument("--json-out", metavar="FILE", help="also write the result as JSON (used by run_all)")
    return parser


def finish(result: BenchResult, json_out: str | None) -> int:
    """Print the result as a text table (and write the JSON for run_all); exit status 0."""
    print(f"\n== {result.title} ({result.seconds:.1f} s)")
    print(text_table(result.headers, result.rows))
    print()
    print(text_table(["target", "measured", "goal", "result"],
                     [[t.name, t.measured, t.goal, t.verdict] for t in result.targets]))
    for note in result.notes:
        print(f"  - {note}")
    if json_out:
        Path(json_out).write_text(result.to_json(), encoding="utf-8")
    return 0


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=False))
             for line in [list(headers), *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    """Wall-clock seconds of one call, and what it returned."""
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def cpu_seconds() -> float:
    """CPU time used so far by this process (all threads) and its waited-for children, user + system.

    On a shared machine wall time also counts the time others held the cores; CPU time does not, so the
    benchmarks report both and a ratio of CPU times stays meaningful when the machine is busy.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def median_seconds(action: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def fmt_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 100 else f"{value:.0f}×"


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the result."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])
    except OSError:
        return "unknown"
