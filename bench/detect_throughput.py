"""Detection throughput: events per second through every built-in rule, on a replay of a mixed workload.

The replay is the fixture vocabulary (agent/detect/replay.py) scaled up: many process trees reading models
(training, inference, copies, archivers, transfer tools) and network connections with bytes sent, in the
proportions a busy workstation produces. Prints events/s and the per-event latency (median, p99).

    .venv/bin/python -m bench.detect_throughput [--events 200000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.replay import event_from
from weightwarden.agent.detect.rules import load_rules
from weightwarden.agent.events import Event

TOOLS = [("python3", "python3 train.py", "/home/ana/.venv/bin/python3"), ("vllm", "vllm serve /m", "/usr/bin/vllm"),
         ("cp", "cp /m/x /tmp/x", "/usr/bin/cp"), ("tar", "tar czf /tmp/x.tgz /m", "/usr/bin/tar"),
         ("scp", "scp /m/x host:/x", "/usr/bin/scp"), ("firefox", "firefox", "/usr/lib/firefox/firefox"),
         ("ollama", "ollama serve", "/usr/local/bin/ollama"), ("sha256sum", "sha256sum /m/x", "/usr/bin/sha256sum")]


def workload(count: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    events: list[Event] = []
    for index in range(count):
        session = rng.randrange(1, 400)
        name, cmd, exe = TOOLS[session % len(TOOLS)]
        process = {"pid": session * 10, "session": session, "name": name, "cmd": cmd, "exe": exe}
        at = index * 0.001
        if rng.random() < 0.3:
            raw = {"at": at, "action": "network-connection", "address": f"203.0.113.{session % 250}", "port": 443,
                   "bytes_sent": rng.randrange(1, 50_000_000), "local_port": rng.randrange(30000, 60000),
                   "process": process}
        else:
            model = f"m{rng.randrange(0, 60)}"
            raw = {"at": at, "action": rng.choice(["model-opened", "model-read"]), "path": f"/m/{model}/model.st",
                   "model": model, "size": 100_000_000, "process": process}
        item = event_from(raw)
        assert isinstance(item, Event)
        events.append(item)
    return events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    events = workload(args.events)
    engine = DetectionEngine(load_rules())
    latencies = []
    alerts = 0
    started = time.perf_counter()
    for event in events:
        before = time.perf_counter()
        alerts += len(engine.process(event))
        latencies.append(time.perf_counter() - before)
    seconds = time.perf_counter() - started
    latencies.sort()
    print(f"{len(events)} events, {alerts} alerts, {seconds:.2f} s: {len(events) / seconds:,.0f} events/s; "
          f"per event median {statistics.median(latencies) * 1e6:.0f} us, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1e6:.0f} us")


if __name__ == "__main__":
    main()
