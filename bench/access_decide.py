"""Access decision speed (issue 17): what the fanotify permission path pays per open.

Run from the repository root: .venv/bin/python -m bench.access_decide [--calls 200000] [--no-write]

A policy set of `--policies` policies (one per model name, plus path globs) governs the model; the opener is a
real `sleep` process read from /proc (agent/access/decide.py opener_of). Measured one call at a time with
perf_counter_ns: a cached decision (the repeated open of one process), an uncached one (ttl 0: policy
lookup, allow entries, grants and break-glass stat), and reading the opener from /proc (hash cached).
Target: p99 < 200 µs per cached decision. Results: docs/benchmarks.md section "access-decide".
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.sections import write_section
from weightwarden.agent.access import grants
from weightwarden.agent.access.decide import Decider, ModelRef, opener_of
from weightwarden.agent.access.policy import AccessPolicies
from weightwarden.agent.executables import ExecutableHashes

TARGET_P99_US = 200.0


def percentiles(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] / 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000


def measure(action: Callable[[], object], calls: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        action()
        samples.append(clock() - start)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    sleep = os.path.realpath(shutil.which("sleep") or "/usr/bin/sleep")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        documents = [f"id: model-{i}\napplies_to: {{models: [model-{i}], paths: ['/srv/models/m{i}/*']}}\n"
                     f"mode: enforce\nallow:\n  - users: [root, ml{i}]\n"
                     f"    programs: [{{executable: /usr/bin/python3*}}, {{executable: {sleep}}}]\n    access: read\n"
                     for i in range(args.policies)]
        (root / "policies.yml").write_text("---\n".join(documents))
        policies = AccessPolicies([str(root / "policies.yml")])
        assert not policies.current.problems, policies.current.problems
        data = root / "data"
        cached = Decider(policies, grants.GrantBook(str(data)), grants.BreakGlass(str(data)))
        uncached = Decider(policies, grants.GrantBook(str(data)), grants.BreakGlass(str(data)), ttl=0.0)
        process = subprocess.Popen([sleep, "600"])
        try:
            hashes = ExecutableHashes()
            deadline = time.monotonic() + 10
            opener = opener_of(process.pid, hashes)
            while opener is None or opener.executable != sleep:  # before its exec the child is this Python
                if time.monotonic() > deadline:
                    raise SystemExit("sleep did not start within 10 s")
                time.sleep(0.01)
                opener = opener_of(process.pid, hashes)
            model = ModelRef(f"/srv/models/m{args.policies - 1}/model.safetensors", f"model-{args.policies - 1}")
            assert cached.decide(opener, model, "read").allowed
            results = {
                "cached decision": measure(lambda: cached.decide(opener, model, "read"), args.calls),
                "uncached decision": measure(lambda: uncached.decide(opener, model, "read"), args.calls // 10),
                "opener from /proc": measure(lambda: opener_of(process.pid, hashes), args.calls // 100),
            }
        finally:
            process.kill()
            process.wait()
    rows = []
    for name, samples in results.items():
        p50, p99 = percentiles(samples)
        rows.append(f"| {name} | {len(samples)} | {p50:.1f} | {p99:.1f} | {statistics.fmean(samples) / 1000:.1f} |")
        print(f"{name}: p50 {p50:.1f} µs, p99 {p99:.1f} µs")
    cached_p99 = percentiles(results["cached decision"])[1]
    verdict = "PASS" if cached_p99 < TARGET_P99_US else "MISS"
    markdown = "\n".join([
        "## Access decision (issue 17)",
        "",
        f"`python -m bench.access_decide`, {args.policies} policies, a real `sleep` as the opener; "
        f"Python {platform.python_version()}, {platform.machine()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "| what | calls | p50 µs | p99 µs | mean µs |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Target p99 < {TARGET_P99_US:.0f} µs per cached decision: {cached_p99:.1f} µs, {verdict}. A cached "
        "decision still stats the grants and break-glass files (so a new grant applies at once); reading "
        "the opener from /proc is paid once per process, the fanotify path keeps it by (pid, start time).",
    ])
    if not args.no_write:
        write_section("access-decide", markdown)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
