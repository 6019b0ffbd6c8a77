"""Discovery speed, side by side in one run: the rate of background discovery over a 1M-file tree at idle
priority (first pass with an empty cache, then a re-pass with the cache it built), and the slowdown it
causes to a foreground workload (extracting a large tarball) against the same extraction without it.

    .venv/bin/python -m bench.discovery_speed [--dir /var/tmp/ww-bench] [--files 1000000] [--write-docs]

The tree (1,000 files per folder, small text and binary files plus 20 real safetensors models) and the
tarball are generated once under --dir and reused. Discovery runs in its own process (the agent's real
Discovery class, its thread at nice 19 and the idle I/O class, no rate limit), so the figures are not those
of a GIL shared with the benchmark's own timing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DEFAULT_DIR, load_average, log
from bench.sections import write_section

TOPIC = "discovery-speed"
PER_FOLDER = 1000
MODELS = 20
TAR_FILES = 4000
TAR_FILE_BYTES = 256 * 1024  # 4,000 x 256 KiB = 1 GiB
REPEATS = 5
DEFAULT_LIMITS = (5000.0, 64.0 * (1 << 20))  # the shipped [inventory] discover_files/bytes_per_second


# ------------------------------------------------------------------------------------------- data

def build_tree(base: Path, files: int) -> Path:
    root = base / f"discovery-tree-{files}"
    manifest = root / ".complete"
    if manifest.exists():
        return root
    log(f"building {files:,} files under {root} (once)")
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(7)
    blob = rng.bytes(1 << 20)
    for index in range(files):
        folder = root / f"p{index // (PER_FOLDER * 100):03}" / f"d{index // PER_FOLDER:05}"
        if index % PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        size = 64 + (index * 7919) % 1900
        name = f"f{index:07}" + (".txt", ".json", ".bin", ".py", ".dat")[index % 5]
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        offset = (index * 104729) % ((1 << 20) - size)
        os.write(fd, f"file {index}\n".encode() + blob[offset:offset + size])
        os.close(fd)
    from safetensors.numpy import save_file

    for model in range(MODELS):
        folder = root / f"p{model % 10:03}" / f"run-{model}"
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"w": rng.standard_normal((256, 256)).astype(np.float32)}, str(folder / "model.safetensors"))
    manifest.write_text(json.dumps({"files": files, "models": MODELS}))
    return root


def build_tarball(base: Path) -> Path:
    tarball = base / f"discovery-foreground-{TAR_FILES}.tar"
    if tarball.exists():
        return tarball
    log(f"building {tarball} (once)")
    source = base / "discovery-foreground-src"
    shutil.rmtree(source, ignore_errors=True)
    rng = np.random.default_rng(11)
    for index in range(TAR_FILES):
        folder = source / f"pkg{index // 200:03}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"part{index:05}.bin").write_bytes(rng.bytes(TAR_FILE_BYTES))
    partial = tarball.with_suffix(".partial")
    with tarfile.open(partial, "w") as archive:
        archive.add(source, arcname="payload")
    partial.rename(tarball)
    shutil.rmtree(source)
    return tarball


# ------------------------------------------------------------------------------------------- discovery

def worker(root: str, passes: int, progress: str | None, limits: tuple[float, float] = (0.0, 0.0)) -> None:
    """Run the agent's Discovery over `root` on its own idle thread; print one JSON line per pass."""
    from weightwarden.agent.discovery import Discovery, DiscoverySettings
    from weightwarden.agent.fingerprint import FingerprintCache
    from weightwarden.agent.identify import Identifier
    from weightwarden.agent.scanner import Scanner

    state: dict[str, str] = {}
    found: list[Any] = []
    scanner = Scanner(Identifier(), FingerprintCache(), workers=1)
    # save_cache: as in the agent, verdicts waiting to be stored are handed over (here: dropped) as they pile up
    discovery = Discovery(scanner, found.append, lambda: [root], DiscoverySettings(*limits), load_state=state.get,
                          save_state=state.__setitem__, save_cache=lambda: scanner.cache.drain_unsaved() and None)
    results: list[dict[str, Any]] = []

    def run() -> None:
        from weightwarden.agent.discovery.priority import make_current_thread_idle

        priority = make_current_thread_idle()
        for number in range(passes):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.monotonic()
            discovery.run_pass()
            seconds = time.monotonic() - started
            results.append({"pass": number + 1, "files": discovery.files_seen - sum(r["files"] for r in results),
                            "seconds": seconds, "cache_hits": discovery.cache_hits, "idle": priority.idle,
                            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                            "rss_before_mib": before / 1024, "cache_entries": len(scanner.cache)})
            print(json.dumps(results[-1]), flush=True)

    thread = threading.Thread(target=run, name="ww-discovery")
    if progress:  # the foreground comparison: report files seen until killed
        thread.daemon = True
        thread.start()
        while True:
            Path(progress).write_text(str(discovery.files_seen))
            time.sleep(0.5)
    thread.start()
    thread.join()


def discovery_rate(root: Path) -> list[dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "bench.discovery_speed", "--worker", str(root), "--passes", "2"],
                            capture_output=True, text=True, check=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------------------------------- foreground

def extract(tarball: Path, target: Path) -> float:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    subprocess.run(["sync"], check=True)
    started = time.monotonic()
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(target)], check=True)
    subprocess.run(["sync", "-f", str(target)], check=True)
    return time.monotonic() - started


def foreground(base: Path, root: Path, tarball: Path) -> dict[str, Any]:
    """Extraction alone, beside discovery at the shipped limits, beside discovery unlimited: interleaved."""
    target = base / "discovery-extract"
    extract(tarball, target)  # warm the tarball into the page cache for every variant alike
    times: dict[str, list[float]] = {"alone": [], "default": [], "unlimited": []}
    walked: dict[str, list[int]] = {"default": [], "unlimited": []}
    for _ in range(REPEATS):
        times["alone"].append(extract(tarball, target))
        for variant, limits in (("default", DEFAULT_LIMITS), ("unlimited", (0.0, 0.0))):
            progress = base / "discovery-progress"
            progress.unlink(missing_ok=True)
            process = subprocess.Popen([sys.executable, "-m", "bench.discovery_speed", "--worker", str(root),
                                        "--passes", "1", "--progress", str(progress),
                                        "--limits", f"{limits[0]},{limits[1]}"], stdout=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 60
                while (not progress.exists() or int(progress.read_text() or 0) < 1000) \
                        and time.monotonic() < deadline:
                    time.sleep(0.1)  # discovery under way (interpreter started, cache empty) before timing
                start_files = int(progress.read_text() or 0)
                times[variant].append(extract(tarball, target))
                walked[variant].append(int(progress.read_text() or 0) - start_files)
            finally:
                process.kill()
                process.wait()
    shutil.rmtree(target, ignore_errors=True)
    return {"times": times, "walked_during": walked}


# ------------------------------------------------------------------------------------------- report

def report(files: int, passes: list[dict[str, Any]], fg: dict[str, Any], load: str = "") -> str:
    cold, warm = passes[0], passes[1]
    times, walked = fg["times"], fg["walked_during"]
    alone = statistics.median(times["alone"])

    def row(variant: str, label: str) -> str:
        median = statistics.median(times[variant])
        slowdown = (median / alone - 1) * 100
        rate = statistics.median(w / s for w, s in zip(walked[variant], times[variant], strict=True))
        verdict = "PASS" if slowdown <= 10 else "MISS"
        return f"| {label} | {median:.2f} | {slowdown:+.1f}% {verdict} | {rate:,.0f} |"

    runs = "; ".join(f"{name} {', '.join(f'{s:.2f}' for s in values)}" for name, values in times.items())
    return f"""## Discovery speed (`bench/discovery_speed.py`)

Run: `.venv/bin/python -m bench.discovery_speed --write-docs` on {os.cpu_count()} CPUs (shared with other
work), {time.strftime('%Y-%m-%d')}. Tree: {files:,} files (1,000 per folder: small text and binary files,
64 B to 2 KB) plus {MODELS} safetensors models, generated once under /var/tmp/ww-bench. Discovery is the
agent's `Discovery` in its own process, its thread at nice 19 and the idle I/O class.

| discovery over {files:,} files, no rate limit | files/s | seconds | peak RSS |
|---|---:|---:|---:|
| first pass, empty cache (every file opened, its head identified) | {cold['files'] / cold['seconds']:,.0f} | \
{cold['seconds']:.1f} | {cold['rss_mib']:,.0f} MiB |
| re-pass, cache built by the first (a stat a file) | {warm['files'] / warm['seconds']:,.0f} | \
{warm['seconds']:.1f} | {warm['rss_mib']:,.0f} MiB |

| foreground: extract a {TAR_FILES * TAR_FILE_BYTES // 10**6:,} MB tarball ({TAR_FILES:,} files) + sync, \
median of {REPEATS} | seconds | slowdown (target at most 10%) | discovery files/s meanwhile |
|---|---:|---:|---:|
| alone | {alone:.2f} | | |
{row("default", "beside a first discovery pass at the shipped limits (5,000 files/s, 64 MiB/s)")}
{row("unlimited", "beside a first discovery pass without a rate limit")}

Every run, in seconds: {runs}. Load average during the run: {load or "not recorded"}.

Notes: the tree sits in the page cache once built (this VM has the RAM), so a first pass measures the
identification work, not the disk. The idle I/O class only matters under an I/O scheduler that honours
classes (BFQ, mq-deadline); this VM's disk uses `none`, so here nice 19 and the rate limit are what leave the
extraction its share. Peak RSS includes the fingerprint cache's in-memory map, one entry per file walked:
the part of the agent's memory that grows with the tree (docs/design.md, Discovery).
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=DEFAULT_DIR)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--write-docs", action="store_true", help="write the section of docs/benchmarks.md")
    parser.add_argument("--worker", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    parser.add_argument("--limits", default="0,0", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        files_limit, bytes_limit = (float(v) for v in args.limits.split(","))
        worker(args.worker, args.passes, args.progress, (files_limit, bytes_limit))
        return 0
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    root = build_tree(base, args.files)
    tarball = build_tarball(base)
    log("foreground extraction, alone and beside discovery")
    load = load_average()
    fg = foreground(base, root, tarball)
    log("discovery rate: an empty-cache pass, then a re-pass")
    passes = discovery_rate(root)
    markdown = report(args.files, passes, fg, f"{load} at the start, {load_average()} at the end")
    print(markdown)
    print(json.dumps({"passes": passes, "foreground": fg}))
    if args.write_docs:
        write_section(TOPIC, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
