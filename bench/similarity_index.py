"""Matching a new file against the prints of many protected models (issue 16): how long one file takes.

Run by hand: `python -m bench.similarity_index [--models 10000] [--tensors 32]`. Builds a SimilarityIndex of
MODELS protected models with TENSORS matrices each (random 32x32 corners, as a trained matrix's signs are),
then matches files of 226 matrices (what a 7B llama's print holds): one holds a Q4-like noisy copy of 32
tensors of one protected model, one holds nothing known. Reports the median match time, the build time and
the memory the index took (RSS growth).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from weightwarden.agent.events import TensorPrint
from weightwarden.agent.fingerprint.blocks import encode_block
from weightwarden.agent.similarity.matcher import SimilarityIndex

FILE_MATRICES = 226  # a 7B llama: 7 matrices in each of 32 blocks, embeddings and output


def corner(values: np.ndarray, name: str) -> TensorPrint:
    raw = np.ascontiguousarray(values, dtype="<f4").view(np.uint8).reshape(-1)
    block = encode_block("<f4", values.shape[0], values.shape[1], raw)
    return TensorPrint(f"t1:{name}", 4096 * 4096, 4096 * 4096 * 2, True, name, block)


def rss_mib() -> float:
    """The resident set now (not the high-water mark: the index is what grows it)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def build(models: int, tensors: int, rng: np.random.Generator) -> tuple[SimilarityIndex, list[np.ndarray], float]:
    index = SimilarityIndex()
    kept: list[np.ndarray] = []
    started = time.perf_counter()
    for model in range(models):
        values = rng.standard_normal((tensors, 32, 32)).astype(np.float32)
        if model == 0:
            kept = list(values)
        index.add(f"/models/m{model}/model.safetensors", f"m{model}",
                  [corner(v, f"m{model}.t{i}") for i, v in enumerate(values)], public=False)
    return index, kept, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--tensors", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(16)
    before = rss_mib()
    index, source, seconds = build(args.models, args.tensors, rng)
    grown = rss_mib() - before
    # A derived file: the first model's tensors with Q4-sized noise, among unrelated matrices.
    noisy = [v + rng.standard_normal(v.shape).astype(np.float32) * 0.1 for v in source]
    others = rng.standard_normal((FILE_MATRICES - len(noisy), 32, 32)).astype(np.float32)
    derived = [corner(v, f"copy.{i}") for i, v in enumerate([*noisy, *others])]
    unrelated = [corner(v, f"other.{i}") for i, v in
                 enumerate(rng.standard_normal((FILE_MATRICES, 32, 32)).astype(np.float32))]
    results = {}
    for label, prints in (("derived", derived), ("unrelated", unrelated)):
        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            found = index.match(prints)
            times.append(time.perf_counter() - started)
        results[label] = (statistics.median(times), max(times), found)
    (d_median, d_max, d_found), (u_median, u_max, u_found) = results["derived"], results["unrelated"]
    assert d_found and d_found[0].model == "m0", d_found
    assert not u_found, u_found
    print(f"index: {args.models:,} protected models x {args.tensors} matrices = {len(index):,} tensors, "
          f"built in {seconds:.1f} s, RSS +{grown:.0f} MiB")
    print(f"match a {FILE_MATRICES}-matrix file holding a noisy copy of one model: median "
          f"{d_median * 1000:.1f} ms (max {d_max * 1000:.1f}), found {d_found[0].model} "
          f"{d_found[0].matched_tensors}/{d_found[0].total_tensors} similarity {d_found[0].similarity}")
    print(f"match a {FILE_MATRICES}-matrix file of unknown matrices: median {u_median * 1000:.1f} ms "
          f"(max {u_max * 1000:.1f}), found nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
