"""`weightwarden verify` over a large log: wall time and peak memory of the real command.

    .venv/bin/python -m bench.verify_log [--dir /var/tmp/ww-bench] [--records 100000] [--reuse] [--no-write]

The log is written by the real Store (chain links, incident triggers) with the agent's vocabulary: model
events with a process, one alert in ten (a third of them updates of an earlier incident), a review
(an `alert-reviewed` event and its status change, as the control socket makes them) every 500 records,
a heartbeat every 1,000 and a checkpoint signed by a real agent key every 5,000; the log ends with a
clean stop's signature. `--reuse` keeps a log built earlier (to time two versions of verify on the same
file). Results go to the `verify` section of docs/benchmarks.md (bench/sections.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_DIR, ensure_dir, load_average, log
from bench.sections import write_section
from weightwarden.agent.alert_evidence import RuleMatchEvidence
from weightwarden.agent.events import Action, Alert, Category, Event, FileInfo, ProcessInfo, Record
from weightwarden.agent.keys import AgentKey
from weightwarden.agent.store import Store
from weightwarden.agent.store.chain import checkpoint_message

COMMAND = ".venv/bin/python -m bench.verify_log"
WEIGHTWARDEN = str(Path(sys.executable).with_name("weightwarden"))
PROCESS = ProcessInfo(pid=4242, name="cp", executable="/usr/bin/cp", user="alice", ppid=1,
                      command_line="cp -r /home/alice/models/llama-3-8b /media/usb/")


def _signed(store: Store, key: AgentKey, reason: str) -> dict[str, Any]:
    sequence, chain_hash = store.chain_head()
    return {"signed_sequence": sequence, "signed_hash": chain_hash, "key_id": key.id, "algorithm": "ed25519",
            "reason": reason, "signature": key.sign(checkpoint_message(sequence, chain_hash, key.id))}


def build_log(data: Path, count: int) -> float:
    """A data directory holding a log of about `count` records and the agent key; returns seconds taken."""
    for name in ("weightwarden.db", "weightwarden.db-wal", "weightwarden.db-shm"):
        (data / name).unlink(missing_ok=True)
    key = AgentKey.load_or_create(data)
    store = Store(data / "weightwarden.db")
    started = time.perf_counter()
    batch: list[Record] = []
    incidents: list[str] = []
    written = 0

    def flush() -> None:
        nonlocal written
        written += len(store.write(batch))
        batch.clear()

    for n in range(1, count - 1):
        if n % 5000 == 0:
            flush()
            store.write([Event(Action.CHAIN_CHECKPOINT, Category.HOST, "chain checkpoint",
                               details=_signed(store, key, "periodic"))])
        elif n % 1000 == 0:
            batch.append(Event(Action.HEARTBEAT, Category.HOST, "heartbeat", details={"coverage": "full"}))
        elif n % 500 == 0 and incidents:
            flush()
            review = store.review.add_review(incidents[n % len(incidents)], "acknowledge", uid=0, user="root")
            batch.append(Event(Action.ALERT_REVIEWED, Category.INTRUSION_DETECTION, "reviewed", details=review))
        elif n % 10 == 0:
            update = n % 30 == 0 and bool(incidents)
            evidence = RuleMatchEvidence(incident=incidents[-1], updates=1) if update else RuleMatchEvidence()
            alert = Alert("model-copy", "Model copied", 7 + update, f"copy {n}", model="llama-3-8b",
                          paths=("/home/alice/models/llama-3-8b/model.safetensors", f"/media/usb/{n}.bin"),
                          process=PROCESS, evidence=evidence)
            if not update:
                incidents.append(alert.id)
            batch.append(alert)
        else:
            batch.append(Event(Action.MODEL_READ, Category.FILE, f"model read {n}", model="llama-3-8b",
                               file=FileInfo(path=f"/home/alice/models/llama-3-8b/model-{n % 4}.safetensors",
                                             size=4_976_698_672, format="safetensors"),
                               process=PROCESS))
        if len(batch) >= 256:
            flush()
    flush()
    store.write([Event(Action.AGENT_STOPPED, Category.HOST, "Weightwarden agent stopped",
                       details={"checkpoint": _signed(store, key, "shutdown")})])
    store.close()
    return time.perf_counter() - started


def time_verify(data: Path) -> dict[str, Any]:
    config = data / "bench-config.toml"
    config.write_text(f'[agent]\ndata_dir = "{data}"\n')
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([WEIGHTWARDEN, "verify", "--json", "--config", str(config)],
                            capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return {"seconds": seconds, "exit": result.returncode, "records": report.get("records"),
            "ok": report.get("ok"), "signatures": report.get("signatures_checked"),
            "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "peak_rss_mib": after.ru_maxrss / 1024, "stderr": result.stderr.strip()[-500:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=DEFAULT_DIR)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="time verify on the log built by an earlier run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print the figures; leave docs/benchmarks.md")
    parser.add_argument("--label", default="", help="what this run measures (e.g. a version), for the notes")
    args = parser.parse_args()
    data = ensure_dir(Path(args.dir) / f"verify-{args.records}")
    os.chmod(data, 0o700)
    build = None
    if not (args.reuse and (data / "weightwarden.db").exists()):
        log(f"building a log of {args.records:,} records in {data}")
        build = build_log(data, args.records)
    runs = []
    for run in range(args.runs):
        log(f"weightwarden verify, run {run + 1}")
        runs.append(time_verify(data))
    print(json.dumps({"build_seconds": build, "runs": runs}, indent=1))
    if not args.no_write:
        write_section("verify", section(args.records, runs, args.label))
    return 0 if all(r["exit"] == 0 for r in runs) else 1


def section(count: int, runs: list[dict[str, Any]], label: str) -> str:
    best = min(runs, key=lambda r: r["seconds"])
    rows = [f"| {n + 1} | {r['records']:,} | {r['seconds']:.2f} | {r['cpu']:.2f} | {r['peak_rss_mib']:.0f} | "
            f"{r['exit']} |" for n, r in enumerate(runs)]
    return "\n".join([
        "## `weightwarden verify` over a large log",
        "",
        f"- **Measured:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load_average()}" + (f"; {label}" if label else ""),
        f"- **Reproduce:** `{COMMAND} --records {count}` (`--reuse` times again on the same log)",
        "- The real command as a subprocess (`weightwarden verify --json`), start-up included; the log is "
        "written by the real Store: events with a process, alerts and incident updates, reviews, heartbeats, "
        "a signed checkpoint every 5,000 records and a clean stop.",
        "",
        "| run | records | seconds | CPU seconds | peak RSS MiB | exit |",
        "|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Best: {best['seconds']:.2f} s, {best['records'] / best['seconds']:,.0f} records/s.",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
