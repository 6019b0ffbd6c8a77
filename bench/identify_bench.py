"""Benchmark for issue 3: identification, one-pass SHA-256 + tensor fingerprints, and rescans, side by side
with the peers the issue names, in one run. Run by hand (needs yara and aide from Debian, and modelscan +
picklescan in /tmp/peers-venv):

    .venv/bin/python -m bench.identify_bench [--dir /var/tmp/ww-bench-identify] [--rescan-gib 20]

Writes the "identify" section of docs/benchmarks.md with measured figures only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.sections import write_section
from tests.agent.identify import model_dirs
from weightwarden.agent.fingerprint import hash_with_tensors
from weightwarden.agent.identify import Identifier
from weightwarden.agent.safe_open import open_regular

REPO = Path(__file__).resolve().parents[1]
RULES = sorted((REPO / "rules" / "formats").glob("*.yar"))
PEERS = Path("/tmp/peers-venv/bin")
GIB = 1 << 30


def build_tree(root: Path, files: int) -> tuple[int, int]:
    """A mixed tree: ~2% model files of every format we write, the rest documents, data, archives, noise.
    Returns (file count, model count)."""
    import gguf
    import joblib
    import torch
    from safetensors.numpy import save_file

    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(0)
    models = 0
    writers: list[Callable[[Path, int], object]] = [
        lambda p, i: save_file({"w": rng.standard_normal((64, 64)).astype(np.float32)}, str(p)),
        lambda p, i: torch.save({"w": torch.randn(64, 64)}, p),
        lambda p, i: np.savez(p.open("wb"), w=rng.standard_normal(256)),
        lambda p, i: p.write_bytes(pickle.dumps({"w": rng.standard_normal(256)}, protocol=4)),
        lambda p, i: joblib.dump({"coef": rng.standard_normal(64)}, p, compress=3),
        lambda p, i: _gguf(gguf, p, rng),
        lambda p, i: model_dirs.flax_msgpack(p),
        lambda p, i: model_dirs.paddle_pdparams(p),
    ]
    # Folder and file-pair models (tests/agent/identify/model_dirs.py): every file of each is a model file.
    bundles: list[Callable[[Path], object]] = [
        model_dirs.saved_model_dir,
        lambda p: model_dirs.openvino_pair(p),
        lambda p: model_dirs.paddle_pair(p),
        lambda p: model_dirs.onnx_with_external_data(p),
        lambda p: model_dirs.mlpackage(p.with_suffix(".mlpackage")),
    ]
    names = ["weights.bin", "model", "notes.txt", "data.safetensors", "x.pt", "blob"]
    for index in range(files):
        folder = root / f"d{index // 200:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = index % 50
        path = folder / f"f{index:05d}"
        if kind == 0:
            writer = writers[(index // 50) % len(writers)]
            path = folder / f"{index}-{names[(index // 50) % len(names)]}"
            writer(path, index)
            models += 1
        elif kind == 1 and (index // 50) % 4 == 0:
            bundle = folder / f"bundle{index}"
            bundles[(index // 200) % len(bundles)](bundle)
            bundle = bundle if bundle.exists() else bundle.with_suffix(".mlpackage")
            models += sum(1 for p in bundle.rglob("*") if p.is_file())
        elif kind < 20:
            path.with_suffix(".txt").write_text(f"line {index}\n" * int(rng.integers(1, 400)))
        elif kind < 30:
            path.with_suffix(".json").write_text(json.dumps({"i": index, "v": list(range(int(rng.integers(1, 50))))}))
        elif kind < 38:
            path.with_suffix(".bin").write_bytes(rng.bytes(int(rng.integers(100, 70_000))))
        elif kind < 42:
            with zipfile.ZipFile(path.with_suffix(".zip"), "w") as archive:
                archive.writestr("a.txt", "hello" * index)
        elif kind < 45:
            path.with_suffix(".pkl").write_bytes(pickle.dumps({"plain": list(range(index % 100))}, protocol=4))
        elif kind < 47:
            path.with_suffix(".md").write_text("GGUF is a format. lmgg. PK\x03\x04 is zip.\n")
        else:
            path.with_suffix(".py").write_text("import torch\nprint('hello')\n" * 20)
    count = sum(1 for _ in root.rglob("*") if _.is_file())
    return count, models


def _gguf(gguf: object, path: Path, rng: np.random.Generator) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")  # type: ignore[attr-defined]
    writer.add_tensor("w", rng.standard_normal((32, 32)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def timed(function: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def weightwarden_identify(root: Path, window: int) -> tuple[float, int, int]:
    identifier = Identifier(window_bytes=window)
    paths = [str(p) for p in root.rglob("*") if p.is_file()]

    def run() -> int:
        return sum(identifier.identify_path(p) is not None for p in paths)

    run()  # warm: page cache and compiled rules, like the peers' second run
    seconds, found = timed(run)
    return seconds, int(found), len(paths)  # type: ignore[call-overload]


def yara_cli(root: Path) -> tuple[float, int]:
    # The CLI sees whole files; `file_size` is an external there too, set to 2 GB (the CLI reads -d numbers
    # as 32-bit) so that size conditions pass.
    command = ["yara", "-r", "-w", "-p", "1", "-d", "file_size=2000000000", *map(str, RULES), str(root)]
    subprocess.run(command, capture_output=True)  # warm
    seconds, result = timed(lambda: subprocess.run(command, capture_output=True, text=True))
    matched = {line.split(" ", 1)[1] for line in result.stdout.splitlines() if " " in line}  # type: ignore[attr-defined]
    return seconds, len(matched)


def modelscan(root: Path) -> tuple[float, int]:
    report = Path("/tmp/ww-modelscan.json")
    command = [str(PEERS / "modelscan"), "-p", str(root), "-r", "json", "-o", str(report)]
    seconds, _ = timed(lambda: subprocess.run(command, capture_output=True, text=True))
    data = json.loads(report.read_text())
    scanned = data.get("summary", {}).get("scanned", {}).get("scanned_files", [])
    return seconds, len(scanned)


PICKLESCAN_LOOP = """
import os, sys, time
from picklescan import scanner
from picklescan.scanner import scan_file_path
# The extension filter of its own directory scan (scanner.scan_directory_path).
known = (*scanner._zip_file_extensions, *scanner._pickle_file_extensions, *scanner._pytorch_file_extensions,
         *scanner._numpy_file_extensions, *getattr(scanner, "_7z_file_extensions", ()))
started, scanned, crashed = time.perf_counter(), 0, 0
for folder, _, names in os.walk(sys.argv[1]):
    for name in names:
        if os.path.splitext(name)[1] not in known:
            continue
        try:
            scanned += scan_file_path(os.path.join(folder, name)).scanned_files > 0
        except Exception:
            crashed += 1
print(scanned, crashed, time.perf_counter() - started)
"""


def picklescan(root: Path) -> tuple[float, int, int, bool]:
    """(seconds, files scanned as pickles, files it raised on, whether its own CLI aborted on the tree).
    Its CLI stops at the first file it cannot parse, so the count comes from its API, file by file."""
    cli = subprocess.run([str(PEERS / "picklescan"), "-p", str(root)], capture_output=True, text=True)
    aborted = "Traceback" in cli.stderr or not re.search(r"Scanned files: (\d+)", cli.stdout)
    result = subprocess.run([str(PEERS / "python"), "-c", PICKLESCAN_LOOP, str(root)], capture_output=True,
                            text=True, check=True)
    scanned, crashed, seconds = result.stdout.split()
    return float(seconds), int(scanned), int(crashed), aborted


def window_time_per_file(root: Path) -> float:
    """Median time to identify one model file through a 64 KiB window (warm cache)."""
    identifier = Identifier(window_bytes=64 << 10)
    paths = [str(p) for p in root.rglob("*") if p.is_file()][:2000]
    times = []
    for path in paths:
        started = time.perf_counter()
        identifier.identify_path(path)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def big_safetensors(path: Path, gib: float) -> Path:
    from safetensors.numpy import save_file

    if path.exists() and path.stat().st_size > gib * GIB * 0.99:
        return path
    rng = np.random.default_rng(1)
    per = 8 << 20  # 8 Mi elements (32 MiB) per tensor
    count = int(gib * GIB / (per * 4)) + 1
    save_file({f"layers.{i}.weight": rng.standard_normal(per, dtype=np.float32).reshape(2048, -1)
               for i in range(count)}, str(path))
    return path


def one_pass_ratio(path: Path, rounds: int = 3) -> tuple[float, float, int]:
    size = path.stat().st_size

    def plain() -> None:
        digest = hashlib.sha256()
        fd, _ = open_regular(str(path))
        buffer = bytearray(4 << 20)
        try:
            while count := os.readv(fd, [buffer]):
                digest.update(memoryview(buffer)[:count])
        finally:
            os.close(fd)

    prints: list[int] = []

    def ours() -> None:
        fd, _ = open_regular(str(path))
        try:
            prints.append(len(hash_with_tensors(fd, size, "safetensors")[1]))
        finally:
            os.close(fd)

    plain_best = ours_best = float("inf")
    for _ in range(rounds):  # alternate, best of each: same page-cache state for both
        plain_best = min(plain_best, timed(plain)[0])
        ours_best = min(ours_best, timed(ours)[0])
    return size / plain_best / 1e6, size / ours_best / 1e6, prints[-1]


IN_PROCESS_RESCAN = 0.0


def in_process_rescan(folder: Path, database: Path) -> float:
    """The rescan without the command's start-up (Python imports, rule compilation): what the agent pays."""
    from weightwarden.agent.fingerprint import FingerprintCache
    from weightwarden.agent.scanner import Scanner
    from weightwarden.agent.store import Store

    store = Store(database, read_only=True)
    cache = FingerprintCache(store.load_file_cache())
    store.close()
    scanner = Scanner(Identifier(), cache)
    seconds, _ = timed(lambda: list(scanner.scan([str(folder)])))
    return seconds


def rescan_vs_aide(folder: Path, gib: int, source: Path) -> tuple[float, float, float, int]:
    folder.mkdir(parents=True, exist_ok=True)
    per = source.stat().st_size
    copies = max(1, int(gib * GIB // per + (1 if gib * GIB % per else 0)))
    for index in range(copies):
        target = folder / f"model-{index:02d}" / "model.safetensors"
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, target)
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    data = Path("/tmp/ww-bench-identify-data")
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "WEIGHTWARDEN_DATA_DIR": str(data)}
    cli = [str(Path(sys.executable).with_name("weightwarden")), "scan", str(folder), "--json", "--mode", "user"]
    subprocess.run(cli, env=env, capture_output=True, check=True)  # first scan: hashes everything
    ours, _ = timed(lambda: subprocess.run(cli, env=env, capture_output=True, check=True))
    global IN_PROCESS_RESCAN
    IN_PROCESS_RESCAN = in_process_rescan(folder, data / "weightwarden.db")
    aide_dir = Path("/tmp/ww-aide")
    shutil.rmtree(aide_dir, ignore_errors=True)
    aide_dir.mkdir()
    config = aide_dir / "aide.conf"
    config.write_text(f"database_in=file:{aide_dir}/aide.db\ndatabase_out=file:{aide_dir}/aide.db.new\n"
                      f"gzip_dbout=no\nreport_url=stdout\n{folder} p+i+n+u+g+s+m+c+sha256\n")
    init, _ = timed(lambda: subprocess.run(["aide", "--init", "-c", str(config)], capture_output=True))
    (aide_dir / "aide.db.new").rename(aide_dir / "aide.db")
    check, _ = timed(lambda: subprocess.run(["aide", "--check", "-c", str(config)], capture_output=True))
    return ours, check, init, total


def aide_version() -> str:
    result = subprocess.run(["aide", "--version"], capture_output=True, text=True)
    return (result.stdout + result.stderr).strip().splitlines()[0]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/var/tmp/ww-bench-identify")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--big-gib", type=float, default=1.1)
    parser.add_argument("--rescan-gib", type=int, default=20)
    args = parser.parse_args()
    base = Path(args.dir)
    tree = base / "tree"
    load_before = os.getloadavg()
    count, models = build_tree(tree, args.files)
    print(f"tree: {count} files, {models} model files written", flush=True)
    ww_seconds, ww_found, ww_files = weightwarden_identify(tree, 1 << 20)
    per_file = window_time_per_file(tree)
    yara_seconds, yara_found = yara_cli(tree)
    ms_seconds, ms_found = modelscan(tree)
    ps_seconds, ps_found, ps_crashed, ps_aborted = picklescan(tree)
    print("identification done", flush=True)
    big = big_safetensors(base / "big.safetensors", args.big_gib)
    plain_rate, ours_rate, tensor_count = one_pass_ratio(big, rounds=5)
    print("one pass done", flush=True)
    ours_rescan, aide_check, aide_init, rescan_bytes = rescan_vs_aide(base / "models20", args.rescan_gib, big)
    cpu = os.cpu_count()
    load_after = os.getloadavg()
    rows = [
        ("Weightwarden (1 MiB window + structural checks)", ww_found, ww_seconds),
        (f"yara {subprocess.run(['yara', '--version'], capture_output=True, text=True).stdout.strip()} CLI, "
         "same rules, whole files", yara_found, yara_seconds),
        ("ModelScan (PyPI)", ms_found, ms_seconds),
        ("picklescan (PyPI)", ps_found, ps_seconds),
    ]
    table = "\n".join(f"| {name} | {found} | {seconds:.2f} s | {ww_files / seconds:,.0f} | "
                      f"{seconds / ww_seconds:.1f}x |" for name, found, seconds in rows)
    markdown = f"""## Identification, tensor fingerprints, rescans (issue 3)

Run `bench/identify_bench.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu} CPUs (shared with other
work: 1-minute load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end), warm page cache,
one run for all.

**Mixed tree**: {ww_files:,} files ({models} model files written by safetensors, torch, numpy, pickle, joblib,
gguf, msgpack (Flax layout), paddle-style pickles under misleading names, plus folder and pair models: SavedModel
directories, OpenVINO xml+bin, Paddle .pdmodel+.pdiparams, ONNX with external data (onnx), .mlpackage; the
rest text, JSON, random bytes, zips, plain-data pickles, notes mentioning magics). "Recognised" = files the
tool reports as (candidate) models; the truth is {models}.

| tool | recognised as models | time | files/s | time vs Weightwarden |
|---|---|---|---|---|
{table}

Notes: yara matches are candidates only (no structural check), so its count includes look-alikes;
ModelScan counts the files it scanned with a model scanner; picklescan the files it scanned as pickles
(through its API file by file: its CLI {"aborted on the tree with an exception" if ps_aborted else "completed"};
it raised on {ps_crashed} files).
Weightwarden, one thread, 64 KiB window: median {per_file * 1e6:.0f} µs per file.

**One pass, SHA-256 + tensor fingerprints** over a {big.stat().st_size / GIB:.2f} GiB safetensors file
({tensor_count} tensors), best of 5, alternating: plain hashlib SHA-256 {plain_rate:,.0f} MB/s; Weightwarden
`hash_with_tensors` {ours_rate:,.0f} MB/s = **{ours_rate / plain_rate:.0%}** of plain hashlib (target >= 85%).

**Rescan of an unchanged {rescan_bytes / GIB:.1f} GiB model tree**: `weightwarden scan` second run
{ours_rescan:.2f} s as a command (start-up included; {IN_PROCESS_RESCAN * 1000:.1f} ms for the scan itself in
the agent's process: the file cache turns it into stat calls); {aide_version()} `--check` (sha256)
{aide_check:.2f} s (its `--init`: {aide_init:.2f} s). Ratio: Weightwarden's command takes
**{ours_rescan / aide_check:.4f}x** AIDE's time ({aide_check / ours_rescan:,.0f}x faster).
"""
    write_section("identify", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
