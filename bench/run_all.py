"""Run the scan-path benchmarks (one subprocess each, one after the other) and write their section of
docs/benchmarks.md.

    .venv/bin/python -m bench.run_all [--dir /var/tmp/ww-bench] [--out docs/benchmarks.md]

docs/benchmarks.md is shared by several suites (bench/sections.py): this one rewrites only the section
TOPIC; the hand-written analysis lives in its own section, ANALYSIS_TOPIC, which a rerun leaves alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import DEFAULT_DIR, BenchResult, load_average, log
from bench.sections import write_section

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "benchmarks.md"
COMMAND = ".venv/bin/python -m bench.run_all"
BENCHMARKS = ("sha256_rate", "scan_rate", "quick_fingerprint")
TIMEOUT = 900  # seconds per benchmark; the whole run is meant to take well under 10 minutes on 2 cores
TOPIC = "scan-path"
ANALYSIS_TOPIC = "scan-path-analysis"  # written by hand, never by this script


@dataclass
class Outcome:
    name: str
    result: BenchResult | None
    error: str | None
    wall_seconds: float


def run_one(name: str, directory: str, extra: Sequence[str]) -> Outcome:
    log(f"running bench.{name}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ww-bench-") as scratch:
        json_out = Path(scratch) / f"{name}.json"
        command = [sys.executable, "-m", f"bench.{name}", "--dir", directory, "--json-out", str(json_out),
                   *extra]
        try:
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired:
            return Outcome(name, None, f"timed out after {TIMEOUT} s", time.perf_counter() - start)
        wall = time.perf_counter() - start
        sys.stderr.write(done.stderr)
        sys.stdout.write(done.stdout)
        if done.returncode != 0 or not json_out.is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            return Outcome(name, None, f"exit status {done.returncode}:\n{tail}", wall)
        return Outcome(name, BenchResult.from_json(json_out.read_text(encoding="utf-8")), None, wall)


# ------------------------------------------------------------------------------------------------ machine

def machine(directory: str) -> list[tuple[str, str]]:
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    flag_set = set(flags.group(1).split()) if flags else set()
    meminfo = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    ram = f"{int(meminfo.group(1)) / 1024 / 1024:.1f} GiB" if meminfo else "unknown"
    sha_flags = ", ".join(flag for flag in ("sha_ni", "avx2", "avx512f") if flag in flag_set) or "none"
    return [
        ("CPU", model.group(1).strip() if model else platform.processor() or "unknown"),
        ("cores (nproc)", f"{len(os.sched_getaffinity(0))} (of {os.cpu_count()} online)"),
        ("CPU features relevant to SHA-256", sha_flags),
        ("RAM", ram),
        ("kernel", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("hashlib backend", _openssl()),
        ("coreutils", _first_line(["sha256sum", "--version"])),
        ("filesystem of the data dir", _filesystem(directory)),
        ("commit", _commit()),
    ]


def busy_note(before: str, after: str) -> str:
    """Other people's work on the machine lowers the absolute figures (ratios suffer less): say so."""
    cores = len(os.sched_getaffinity(0))
    peak = max(float(before.split()[0]), float(after.split()[0])) if before[:1].isdigit() else 0.0
    verdict = (f"busy: load above the {cores} cores, absolute figures are pessimistic" if peak > cores
               else "quiet enough")
    return f"load average (1, 5, 15 min) at start {before}, at end {after}: {verdict}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _openssl() -> str:
    import ssl

    return ssl.OPENSSL_VERSION


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "unavailable"
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def _filesystem(directory: str) -> str:
    Path(directory).mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["df", "--output=fstype,source", directory], capture_output=True, text=True,
                          check=False)
    lines = done.stdout.split("\n")
    return " on ".join(lines[1].split()) if len(lines) > 1 and lines[1].strip() else "unknown"


def _commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                           check=False).stdout.strip()
    if not head:
        return "unknown"
    return f"{head} (working tree with uncommitted changes)" if dirty else head


# ------------------------------------------------------------------------------------------------ report

def markdown(outcomes: list[Outcome], when: datetime, total_seconds: float, load: str, directory: str) -> str:
    lines = [
        "## Scan path: SHA-256, scan rate, quick fingerprint",
        "",
        "Speed of the scan path against the issue's targets, measured side by side in one run and reported",
        "as ratios (absolute figures depend on the machine; the ratios are what the targets are about).",
        "This section is generated: do not edit its figures by hand, rerun the command.",
        "",
        f"- **Measured:** {when:%Y-%m-%d %H:%M} UTC, whole run {total_seconds / 60:.1f} min",
        f"- **Reproduce** (from the repository root): `{COMMAND}`",
        f"- **Test data:** created under `{DEFAULT_DIR}` on the first run (about 2.5 GB) and reused; "
        "`--dir` moves it.",
        "- OPENBLAS_NUM_THREADS / OMP_NUM_THREADS are irrelevant here: nothing timed calls BLAS "
        "(numpy only writes the fixtures).",
        "",
        "### Machine",
        "",
        _table(["", ""], [[key, value] for key, value in [*machine(directory), ("during the run", load)]]),
        "",
        "### Targets",
        "",
    ]
    summary = []
    for outcome in outcomes:
        if outcome.result is None:
            summary.append([outcome.name, "—", "—", "—", "NOT RUN"])
            continue
        for target in outcome.result.targets:
            if target.met is not None:
                summary.append([outcome.result.title, target.name, target.measured, target.goal,
                                f"**{target.verdict}**"])
    lines += [_table(["benchmark", "target", "measured", "goal", "result"], summary), ""]

    for number, outcome in enumerate(outcomes, start=1):
        result = outcome.result
        if result is None:
            lines += [f"### {number}. bench.{outcome.name}", "", "**Did not complete:**", "", "```",
                      outcome.error or "", "```", ""]
            continue
        lines += [
            f"### {number}. {result.title}",
            "",
            f"{result.description} `{_reproduce(outcome.name)}` ({outcome.wall_seconds:.0f} s).",
            "",
            _table(result.headers, result.rows),
            "",
            _table(["target", "measured", "goal", "result"],
                   [[t.name, t.measured, t.goal, t.verdict] for t in result.targets]),
            "",
            *[f"- {note}" for note in result.notes],
            "",
        ]
    return "\n".join(lines)


def _reproduce(name: str) -> str:
    return f".venv/bin/python -m bench.{name}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(value: str) -> str:
        return str(value).replace("|", "\\|")

    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"test data directory (default {DEFAULT_DIR})")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file to write (docs/benchmarks.md)")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=list(BENCHMARKS),
                        help="run only these benchmarks")
    args = parser.parse_args(argv)

    when = datetime.now(UTC)
    load_before = load_average()
    start = time.perf_counter()
    outcomes = [run_one(name, args.dir, []) for name in args.only]
    total = time.perf_counter() - start
    load = busy_note(load_before, load_average())
    out = Path(args.out)
    write_section(TOPIC, markdown(outcomes, when, total, load, args.dir), out)
    log(f"wrote {out} after {total:.0f} s")
    failed = [outcome.name for outcome in outcomes if outcome.result is None]
    if failed:
        log(f"did not complete: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
