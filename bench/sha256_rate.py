"""SHA-256 throughput of `sha256_fd` against hashlib.file_digest, a plain readinto loop and sha256sum.

All methods hash the same page-cached file of random bytes, interleaved round by round (the order rotates
each round so no method always runs first); each keeps its best round. Every digest must agree.

    .venv/bin/python -m bench.sha256_rate [--dir /var/tmp/ww-bench] [--size-mib 2048] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import (
    MB,
    MIB,
    BenchResult,
    Target,
    base_parser,
    cpu_seconds,
    ensure_dir,
    finish,
    fmt_ratio,
    load_average,
    log,
)
from weightwarden.agent.fingerprint.sha256 import DEFAULT_BLOCK, sha256_fd
from weightwarden.agent.safe_open import regular_file

CHUNK = 64 * MIB
SEED = 20240611
FILE_DIGEST_TARGET = 0.90


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    digest: Callable[[Path], str]
    reference: bool = False  # a floor for comparison, not a SHA-256 (no digest to check)


def ensure_random_file(directory: Path, size: int) -> Path:
    """A file of `size` random bytes, written in 64 MiB chunks (never all in memory); reused when present."""
    path = directory / f"random-{size // MIB}MiB.bin"
    if path.is_file() and path.stat().st_size == size:
        log(f"reusing {path}")
        return path
    log(f"writing {size // MIB} MiB of random bytes to {path}")
    rng = np.random.default_rng(SEED)
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as out:
        left = size
        while left > 0:
            count = min(CHUNK, left)
            words = rng.integers(0, np.iinfo(np.uint64).max, (count + 7) // 8, dtype=np.uint64, endpoint=True)
            out.write(words.data.cast("B")[:count])
            left -= count
    partial.replace(path)
    return path


def read_whole(path: Path, block: int = 16 * MIB) -> int:
    """Read the file once (fills the page cache); returns the bytes read."""
    buffer = bytearray(block)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while count := f.readinto(buffer):
            total += count
    return total


def resident_fraction(path: Path) -> float | None:
    """Share of the file in the page cache, from util-linux fincore (None when unavailable)."""
    if shutil.which("fincore") is None:
        return None
    done = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                          capture_output=True, text=True, check=False)
    try:
        return int(done.stdout.split()[0]) / path.stat().st_size
    except (IndexError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------ methods

def ours(block: int) -> Callable[[Path], str]:
    def digest(path: Path) -> str:
        with regular_file(str(path)) as (fd, info):
            return sha256_fd(fd, info.st_size, block_size=block)
    return digest


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def readinto_loop(block: int) -> Callable[[Path], str]:
    def digest(path: Path) -> str:
        hasher = hashlib.sha256()
        buffer = bytearray(block)
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as f:
            while count := f.readinto(buffer):
                hasher.update(view[:count])
        return hasher.hexdigest()
    return digest


def sha256sum(path: Path) -> str:
    done = subprocess.run(["sha256sum", "-b", str(path)], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


def read_only(path: Path) -> str:
    read_whole(path, 4 * MIB)
    return ""


def methods(extra_blocks: Sequence[int]) -> list[Method]:
    chosen = [
        Method("ours_default", f"sha256_fd, default block ({DEFAULT_BLOCK // MIB} MiB)", ours(DEFAULT_BLOCK)),
        Method("ours_1m", "sha256_fd, 1 MiB block", ours(1 * MIB)),
        Method("ours_16m", "sha256_fd, 16 MiB block", ours(16 * MIB)),
    ]
    for kib in extra_blocks:
        chosen.append(Method(f"ours_{kib}k", f"sha256_fd, {kib} KiB block (diagnostic)", ours(kib * 1024)))
    chosen += [
        Method("file_digest", "hashlib.file_digest (256 KiB readinto)", file_digest),
        Method("readinto_4m", "hashlib + readinto, 4 MiB buffer", readinto_loop(4 * MIB)),
        Method("sha256sum", "coreutils sha256sum (subprocess)", sha256sum),
        Method("read_only", "read only, no hashing (4 MiB readinto; floor)", read_only, reference=True),
    ]
    return chosen


# ------------------------------------------------------------------------------------------------ run

def run(args: argparse.Namespace) -> BenchResult:
    started = time.perf_counter()
    directory = ensure_dir(Path(args.dir) / "sha256")
    size = args.size_mib * MIB
    path = ensure_random_file(directory, size)
    log("reading the file once to page-cache it")
    read_whole(path)
    cached = resident_fraction(path)
    load_before = load_average()

    chosen = methods(args.extra_blocks)
    times: dict[str, list[float]] = {m.key: [] for m in chosen}
    cpu: dict[str, list[float]] = {m.key: [] for m in chosen}
    digests: dict[str, set[str]] = {m.key: set() for m in chosen if not m.reference}
    for round_index in range(args.repeat):
        shift = round_index % len(chosen)
        for method in chosen[shift:] + chosen[:shift]:
            start, start_cpu = time.perf_counter(), cpu_seconds()
            value = method.digest(path)
            times[method.key].append(time.perf_counter() - start)
            cpu[method.key].append(cpu_seconds() - start_cpu)
            if not method.reference:
                digests[method.key].add(value)
        log(f"round {round_index + 1}/{args.repeat}: "
            + ", ".join(f"{k} {size / MB / v[-1]:.0f}" for k, v in times.items()) + " MB/s")

    distinct = set().union(*digests.values())
    if len(distinct) != 1:
        raise SystemExit(f"DIGESTS DISAGREE: {digests}")
    (digest,) = distinct

    best = {key: min(values) for key, values in times.items()}
    best_cpu = {key: min(values) for key, values in cpu.items()}
    mbps = {key: size / MB / seconds for key, seconds in best.items()}
    median_mbps = {key: size / MB / statistics.median(values) for key, values in times.items()}
    rows = []
    for method in chosen:
        rows.append([method.label, f"{mbps[method.key]:,.0f}", f"{median_mbps[method.key]:,.0f}",
                     f"{best[method.key]:.3f}", f"{best_cpu[method.key]:.3f}",
                     fmt_ratio(mbps[method.key] / mbps["file_digest"]),
                     fmt_ratio(best_cpu["file_digest"] / best_cpu[method.key])])
    versus_python = mbps["ours_default"] / mbps["file_digest"]
    versus_coreutils = mbps["ours_default"] / mbps["sha256sum"]
    versus_python_cpu = best_cpu["file_digest"] / best_cpu["ours_default"]
    targets = [
        Target("sha256_fd (default block) / hashlib.file_digest", f"{versus_python:.2f}",
               f">= {FILE_DIGEST_TARGET:.2f}", versus_python >= FILE_DIGEST_TARGET),
        Target("same, by CPU time (insensitive to a busy machine)", f"{versus_python_cpu:.2f}",
               f">= {FILE_DIGEST_TARGET:.2f}", versus_python_cpu >= FILE_DIGEST_TARGET),
        Target("sha256_fd (default block) / sha256sum", f"{versus_coreutils:.2f}", "— (peer, no goal)", None),
    ]
    notes = [
        f"File: {size // MIB} MiB of random bytes at {path}; "
        + (f"{cached:.0%} page-cached before timing (fincore)" if cached is not None
           else "read once before timing")
        + f"; load average before: {load_before}, after: {load_average()}.",
        f"Best of {args.repeat} interleaved rounds (order rotated each round); median shown for spread. "
        "MB = 10^6 bytes. Ratio columns: speed relative to hashlib.file_digest, by wall time and by CPU "
        "time (user + system, sha256sum's included), which does not count time others held the cores.",
        f"All {len(digests)} SHA-256 methods agree: {digest}.",
        f"hashlib backend: {_openssl_version()}; {_sha256sum_version()}.",
    ]
    return BenchResult(
        name="sha256_rate", title="SHA-256 throughput (page-cached file)",
        description="Full-file SHA-256 of a page-cached file of random bytes: our streaming `sha256_fd` "
                    "against Python's own and coreutils' implementations.",
        headers=["method", "best MB/s", "median MB/s", "best wall s", "best CPU s", "vs file_digest (wall)",
                 "vs file_digest (CPU)"], rows=rows,
        targets=targets, notes=notes,
        raw={"size": size, "best_seconds": best, "best_cpu_seconds": best_cpu, "mbps": mbps,
             "median_mbps": median_mbps,
             "all_seconds": times, "digest": digest, "page_cached": cached},
        seconds=time.perf_counter() - started,
    )


def _openssl_version() -> str:
    return ssl.OPENSSL_VERSION


def _sha256sum_version() -> str:
    done = subprocess.run(["sha256sum", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else "sha256sum version unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--size-mib", type=int, default=2048, help="test file size in MiB (default 2048)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds, best kept (default 3)")
    parser.add_argument("--extra-blocks", type=int, nargs="*", default=[], metavar="KIB",
                        help="also time sha256_fd with these block sizes in KiB (diagnosis)")
    args = parser.parse_args(argv)
    return finish(run(args), args.json_out)


if __name__ == "__main__":
    sys.exit(main())
