"""Detection latency (issue 5, Speed): from the end of an exfiltrating action to the stored alert.

Run by hand, as root (fanotify, network namespaces, loop mounts), from the repository root:
    .venv/bin/python -m bench.detect_latency [--repeats 10] [--big-repeats 3] [--big-mb 1024] [--no-write]

One agent (system mode, subprocess) protects a 4.6 MB safetensors model, a `--big-mb` one and a canary.
Each scenario runs `--repeats` times (the 1 GB transfer `--big-repeats` times), every run in its own
session (a new process tree, so a new incident). The clock starts when the tool returned (copies,
archives, scp) or when the uploader's last `sendall` returned (uploads: the end of the transfer); it stops
when the alert is readable in the store (polled every 10 ms, so figures include up to 10 ms of polling).
For uploads the alert that counts is the update showing the whole model sent (progress 100%); when the
first alert (at half the model) was stored is reported too. The places and receivers are the scenario
suite's (tests/agent/detect/scenario_world.py): a loop-mounted ext4 as the USB stick, an sshd and
listeners in a network namespace pair. Results: docs/benchmarks.md section "detect-latency".
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import load_average, log
from bench.sections import write_section
from tests.agent.detect.scenario_world import SERVER_ADDRESS, SSH_PORT, Remote, Upload, scenario_config, usb_stick
from tests.agent.sensors.test_agent_activity import Agent
from tests.conftest import write_safetensors
from weightwarden.agent import canary
from weightwarden.agent.events import parse_time
from weightwarden.agent.store import Store
from weightwarden.agent.store.review_queries import AlertFilter, AlertRow

POLL_SECONDS = 0.01
COPY_TARGET_SECONDS = 1.0
NETWORK_TARGET_SECONDS = 2.0


def write_big_model(path: Path, megabytes: int) -> Path:
    """A real safetensors file of about `megabytes` (written by the safetensors library, chunked tensors)."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(5)
    rows = max(1, (megabytes << 20) // (4 * 4096 * 8))
    tensors = {f"layers.{i}.weight": rng.standard_normal((rows, 4096), dtype=np.float32) for i in range(8)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


class Bench:
    def __init__(self, root: Path, agent: Agent, database: Path) -> None:
        self.root = root
        self.agent = agent
        self.store = Store(database, read_only=True)
        self.results: dict[str, list[float]] = {}
        self.extra: dict[str, list[float]] = {}

    def last_sequence(self) -> int:
        return self.store.review.max_sequence()

    def wait_alert(self, after: int, match: Callable[[AlertRow], bool],
                   timeout: float = 30.0) -> tuple[AlertRow, float]:
        """The first alert stored after `after` that matches, and when it was first readable."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for row in self.store.review.alerts_after(after, AlertFilter(every_update=True)):
                if match(row):
                    return row, time.time()
            time.sleep(POLL_SECONDS)
        raise TimeoutError("no matching alert within the timeout")

    def record(self, scenario: str, seconds: float) -> None:
        self.results.setdefault(scenario, []).append(seconds)
        log(f"{scenario}: {seconds * 1000:.0f} ms")


def run(argv: list[str], **kwargs: Any) -> float:
    subprocess.run(argv, check=True, capture_output=True, timeout=300, start_new_session=True, **kwargs)
    return time.time()


def copy_to(bench: Bench, name: str, source: Path, target: Path) -> None:
    after = bench.last_sequence()
    ended = run(["cp", str(source), str(target)])
    _, seen = bench.wait_alert(after, lambda r: r.rule == "model-copy" and str(target) in r.record_json)
    bench.record(name, seen - ended)
    target.unlink()


def upload(bench: Bench, name: str, remote: Remote, source: Path, port: int) -> None:
    after = bench.last_sequence()
    transfer = Upload(remote, source, port, [1.0])
    try:
        transfer.step()
        ended = time.time()
        pid = transfer.uploader.pid

        def egress(row: AlertRow) -> bool:
            return row.rule == "model-egress-budget" and (row.record.get("process") or {}).get("pid") == pid

        first, _ = bench.wait_alert(after, egress, timeout=60)
        _, seen = bench.wait_alert(after, lambda r: egress(r) and r.record["evidence"].get("progress", 0) >= 1.0,
                                   timeout=60)
        bench.record(name, seen - ended)
        # When the first alert (half the model sent) was raised: negative while the transfer still ran.
        bench.extra.setdefault(name, []).append(parse_time(first.time).timestamp() - ended)
        transfer.finish()
    finally:
        transfer.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--big-repeats", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.detect_latency needs root (fanotify, network namespaces, a loop mount)", file=sys.stderr)
        return 2
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ww-detect-latency-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        paths = {n: root / n for n in ("models", "out", "data", "remote", "work")}
        for path in paths.values():
            path.mkdir()
        model = write_safetensors(paths["models"] / "llama" / "model.safetensors", rows=12000, seed=7)
        log(f"writing the {args.big_mb} MB model")
        big = write_big_model(paths["models"] / "big" / "model.safetensors", args.big_mb)
        decoy = canary.plant(str(paths["models"] / "internal-13b"), str(paths["data"]))
        remote = Remote(paths["remote"])
        stack.callback(remote.stop)
        remote.start()
        usb = stack.enter_context(usb_stick(root / "usb.img"))
        dropbox = paths["out"] / "Dropbox"
        dropbox.mkdir()
        config = scenario_config(root / "config.toml", data=paths["data"], models=paths["models"],
                                 watched=[paths["out"], usb], allow_processes=[])
        agent = Agent(config, dict(os.environ))
        stack.callback(lambda: agent.stop() if agent.process.poll() is None else None)
        log("waiting for the initial inventory")
        deadline = time.monotonic() + 300
        while "scan-finished" not in agent.actions():
            if time.monotonic() > deadline or agent.process.poll() is not None:
                raise RuntimeError(f"the agent did not finish its inventory (log: {agent.log})")
            time.sleep(0.5)
        time.sleep(1.0)  # fanotify marks follow the inventory once a second
        bench = Bench(root, agent, paths["data"] / "weightwarden.db")
        stack.callback(bench.store.close)
        for index in range(args.repeats):
            copy_to(bench, "cp to a temporary folder", model, paths["out"] / f"copy{index}.safetensors")
            copy_to(bench, "cp to the USB stick (loop ext4)", model, usb / f"copy{index}.safetensors")
            copy_to(bench, "cp into a Dropbox folder", model, dropbox / f"copy{index}.safetensors")
            after = bench.last_sequence()
            ended = run(["head", "-c", "100", decoy.path])
            bench.record("head -c on a canary", bench.wait_alert(after, lambda r: r.rule == "canary-model-accessed")[1]
                         - ended)
            after = bench.last_sequence()
            archive = paths["out"] / f"llama{index}.tgz"
            ended = run(["tar", "czf", str(archive), "-C", str(paths["models"]), "llama"])
            bench.record("tar czf of the model folder", bench.wait_alert(
                after, lambda r, a=archive: r.rule == "model-staged-in-archive" and str(a) in r.record_json)[1] - ended)
            archive.unlink()
            if remote.sshd is not None:
                after = bench.last_sequence()
                ended = run(remote.in_client("scp", *remote.ssh_options(), "-P", str(SSH_PORT), str(model),
                                             f"root@{SERVER_ADDRESS}:{remote.inbox}/m{index}"))
                bench.record("scp to an sshd (netns)", bench.wait_alert(
                    after, lambda r: r.rule == "transfer-tool-sent-model" and '"tool": "scp"' in r.record_json)[1]
                    - ended)
            upload(bench, "upload 4.6 MB (netns), alert at 100%", remote, model, 9190 + index)
        for index in range(args.big_repeats):
            upload(bench, f"upload {args.big_mb} MB (netns), alert at 100%", remote, big, 9290 + index)
        load = load_average()
    rows = []
    for scenario, values in bench.results.items():
        network = "upload" in scenario or "scp" in scenario
        target = NETWORK_TARGET_SECONDS if network else COPY_TARGET_SECONDS
        p99 = percentile(values, 0.99)
        first = bench.extra.get(scenario)
        note = (f"first alert (half the model sent) raised {statistics.median(first) * 1000:+.0f} ms from the "
                "end (median)" if first else "")
        rows.append(f"| {scenario} | {len(values)} | {statistics.median(values) * 1000:.0f} ms | {p99 * 1000:.0f} ms "
                    f"| < {target:.0f} s: {'met' if p99 < target else 'NOT met'} | {note} |")
        print(rows[-1])
    markdown = "\n".join([
        "## Detection latency (issue 5): end of the action -> stored alert",
        "",
        f"`.venv/bin/python -m bench.detect_latency --repeats {args.repeats} --big-repeats {args.big_repeats} "
        f"--big-mb {args.big_mb}` on {platform.node()} ({os.cpu_count()} cores, shared; load average {load} at the "
        f"end; {time.time() - started:.0f} s in all). The clock runs from the tool's return (uploads: the last "
        "`sendall`'s return) to the alert being readable in the store, polled every 10 ms. Network poll 0.2 s, "
        "store flush 0.05 s (the scenario config). 0 ms: the alert was already stored when the tool returned (raised "
        "at its read of the model). p99 of few runs is the maximum.",
        "",
        "The USB stick stand-in is a loop-mounted ext4 image under /media, where the desktop mounts what a user "
        "attaches: the agent rates it removable media (severity 9). Copies are 4.6 MB.",
        "",
        "| scenario | runs | median | p99 | target | note |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    if not args.no_write:
        write_section("detect-latency", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
