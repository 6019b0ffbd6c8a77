"""Quick fingerprint cost for a 1 MiB file and a 100 GiB sparse file: it must not grow with the file size.

    .venv/bin/python -m bench.quick_fingerprint [--dir /var/tmp/ww-bench] [--calls 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import (
    GIB,
    MIB,
    BenchResult,
    Target,
    base_parser,
    ensure_dir,
    finish,
    fmt_ratio,
    fmt_seconds,
    log,
    median_seconds,
)
from weightwarden.agent.fingerprint.quick import SAMPLE_BYTES, SAMPLES, quick_fingerprint
from weightwarden.agent.fingerprint.sha256 import sha256_fd
from weightwarden.agent.safe_open import open_regular, regular_file

SMALL_SIZE = 1 * MIB
SPARSE_SIZE = 100 * GIB
SEED = 20240612
ABSOLUTE_GOAL = 5e-3  # "a few ms"
RATIO_GOAL = 10.0  # "same order" of magnitude


def ensure_files(directory: Path) -> tuple[Path, Path]:
    small = directory / "one-mib.bin"
    if not (small.is_file() and small.stat().st_size == SMALL_SIZE):
        small.write_bytes(np.random.default_rng(SEED).bytes(SMALL_SIZE))
    sparse = directory / "sparse-100gib.bin"
    if not (sparse.is_file() and sparse.stat().st_size == SPARSE_SIZE):
        with open(sparse, "wb") as out:
            out.truncate(SPARSE_SIZE)
    return small, sparse


def quick_on_open_fd(path: Path, calls: int) -> tuple[float, str]:
    with regular_file(str(path)) as (fd, info):
        fingerprint = quick_fingerprint(fd, info.st_size)
        return median_seconds(lambda: quick_fingerprint(fd, info.st_size), calls), fingerprint


def quick_with_open(path: Path, calls: int) -> float:
    """What the scanner pays per identified file: open (O_NOATIME, fstat checks), fingerprint, close."""
    def once() -> None:
        fd, info = open_regular(str(path))
        try:
            quick_fingerprint(fd, info.st_size)
        finally:
            os.close(fd)
    return median_seconds(once, calls)


def sha256_on_open_fd(path: Path, calls: int) -> float:
    with regular_file(str(path)) as (fd, info):
        return median_seconds(lambda: sha256_fd(fd, info.st_size), calls)


def run(args: argparse.Namespace) -> BenchResult:
    started = time.perf_counter()
    small, sparse = ensure_files(ensure_dir(Path(args.dir) / "quick"))
    allocated = sparse.stat().st_blocks * 512
    log(f"timing quick fingerprints, {args.calls} calls each")
    for path in (small, sparse):  # warm up: page cache, code paths
        quick_on_open_fd(path, 5)
    small_quick, small_fp = quick_on_open_fd(small, args.calls)
    sparse_quick, sparse_fp = quick_on_open_fd(sparse, args.calls)
    small_open = quick_with_open(small, args.calls)
    sparse_open = quick_with_open(sparse, args.calls)
    small_sha = sha256_on_open_fd(small, args.calls)

    ratio = sparse_quick / small_quick
    ratio_open = sparse_open / small_open
    slowest = max(small_quick, sparse_quick, small_open, sparse_open)
    measured = [
        ("quick_fingerprint, 1 MiB file (open fd)", small_quick),
        ("quick_fingerprint, 100 GiB sparse file (open fd)", sparse_quick),
        ("open_regular + quick_fingerprint + close, 1 MiB", small_open),
        ("open_regular + quick_fingerprint + close, 100 GiB sparse", sparse_open),
        ("full sha256_fd of the 1 MiB file (for scale)", small_sha),
    ]
    rows = [[label, fmt_seconds(value), f"{value * 1e3:.4f}"] for label, value in measured]
    targets = [
        Target("quick fp 100 GiB / 1 MiB (open fd)", fmt_ratio(ratio), f"<= {RATIO_GOAL:.0f}× (same order)",
               ratio <= RATIO_GOAL),
        Target("quick fp 100 GiB / 1 MiB (with open+close)", fmt_ratio(ratio_open),
               f"<= {RATIO_GOAL:.0f}× (same order)", ratio_open <= RATIO_GOAL),
        Target("slowest quick fp median", fmt_seconds(slowest), f"<= {ABSOLUTE_GOAL * 1e3:.0f} ms (a few ms)",
               slowest <= ABSOLUTE_GOAL),
        Target("full SHA-256 of 1 MiB / quick fp of 1 MiB", fmt_ratio(small_sha / small_quick),
               "— (scale, no goal)", None),
    ]
    notes = [
        f"Median of {args.calls} calls each, page-cached. The quick fingerprint reads {SAMPLES} blocks of "
        f"{SAMPLE_BYTES} bytes whatever the size.",
        f"The 100 GiB file is sparse ({allocated:,} bytes allocated): its samples come from holes, so this "
        "measures the fixed cost (syscalls + BLAKE2b), not disk seeks. On a cold, dense file the cost is "
        f"{SAMPLES} random reads: about {SAMPLES} × the device's read latency.",
        f"Fingerprints: 1 MiB {small_fp}, sparse {sparse_fp}.",
    ]
    return BenchResult(
        name="quick_fingerprint", title="Quick fingerprint: constant cost",
        description="Time of `quick_fingerprint(fd, size)` for a 1 MiB file and a 100 GiB sparse file.",
        headers=["measure", "median", "ms"], rows=rows, targets=targets, notes=notes,
        raw={"small_quick_s": small_quick, "sparse_quick_s": sparse_quick, "small_open_s": small_open,
             "sparse_open_s": sparse_open, "small_sha256_s": small_sha, "calls": args.calls},
        seconds=time.perf_counter() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--calls", type=int, default=200, help="calls per measurement, median kept (200)")
    args = parser.parse_args(argv)
    return finish(run(args), args.json_out)


if __name__ == "__main__":
    sys.exit(main())
