"""What it costs a seal to say what the plaintext is (agent/seal/identity.py, docs/sealing.md).

A seal's first pass used to be a bare SHA-256 of the plaintext; it now identifies the file (YARA on the
head, the structural check), names its model and samples its tensor prints while hashing. This measures that
first pass both ways on the same page-cached safetensors model written by the safetensors library (64
float32 tensors of 4096 x 1024: 1 GiB by default), best of three runs each, and checks the prints come out.

    .venv/bin/python -m bench.seal_identity [--dir /var/tmp/ww-bench] [--tensors 64]
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import MB, base_parser, ensure_dir, load_average, log
from bench.sections import write_section
from bench.sha256_rate import read_whole
from weightwarden.agent.seal.identity import Describer, PlainIdentity, bare_sha256

ROWS, COLUMNS = 4096, 1024
RUNS = 3


def ensure_model(directory: Path, tensors: int) -> Path:
    from safetensors.numpy import save_file

    path = directory / f"seal-identity-{tensors}.safetensors"
    if not path.is_file():
        rng = np.random.default_rng(20261206)
        save_file({f"layers.{i}.weight": rng.standard_normal((ROWS, COLUMNS)).astype(np.float32)
                   for i in range(tensors)}, str(path))
    return path


def best_of(action: Callable[[], PlainIdentity]) -> tuple[float, float, PlainIdentity]:
    """(wall s, CPU s, result) of the fastest of RUNS runs."""
    runs = []
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        result = action()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu, result))
    return min(runs, key=lambda run: run[0])


def run(directory: Path, tensors: int) -> str:
    path = ensure_model(directory, tensors)
    size = path.stat().st_size
    read_whole(path)  # page-cached for both
    describe = Describer()
    fd = os.open(path, os.O_RDONLY)
    try:
        describe(fd, size, str(path))  # the format rules are compiled once per seal command, not per file
        bare_wall, bare_cpu, _ = best_of(lambda: bare_sha256(fd, size, str(path)))
        full_wall, full_cpu, found = best_of(lambda: describe(fd, size, str(path)))
    finally:
        os.close(fd)
    assert found.format == "safetensors" and len(found.prints) == tensors, found
    log(f"sha256 only {bare_wall:.2f} s, describe {full_wall:.2f} s")
    rows = [("SHA-256 only (the first pass before)", bare_wall, bare_cpu),
            ("identify + SHA-256 + tensor prints (now)", full_wall, full_cpu)]
    lines = [
        "## Sealing: what the plaintext is (bench/seal_identity.py)",
        "",
        f"One run, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, Linux "
        f"{platform.release()}; load average {load_average()} after. A page-cached safetensors file of "
        f"{size / MB:,.0f} MB ({tensors} float32 tensors of {ROWS} x {COLUMNS}, written by the safetensors "
        f"library); best of {RUNS} runs; MB = 10^6 bytes. The first of a seal's two passes over the plaintext "
        "(the second encrypts).",
        "",
        "| first pass | wall s | MB/s | CPU s |",
        "|---|---|---|---|",
        *[f"| {name} | {wall:.2f} | {size / MB / wall:,.0f} | {cpu:.2f} |" for name, wall, cpu in rows],
        "",
        f"- Saying what the plaintext is costs {full_wall / bare_wall - 1:.0%} more on the first pass "
        f"({full_wall - bare_wall:.2f} s for this file); it found the format and all {len(found.prints)} tensor "
        "prints. The format rules are compiled once per `seal` command (about half a second), not per file.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=64, help="16 MiB float32 tensors in the model")
    args = parser.parse_args(argv)
    write_section("seal-identity", run(ensure_dir(args.dir), args.tensors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
