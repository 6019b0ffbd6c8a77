"""The agent's evidence path as a killable process, for the chaos test: store + batched writer + Evidence
(forwarders, heartbeats, checkpoints) from the real config, producing numbered events at a steady rate.

    python -m tests.agent.forward.chaos_agent CONFIG TOTAL RATE

It resumes numbering after the highest `n` committed, so SIGKILL at any point loses nothing committed;
SIGTERM shuts down like the agent does (agent-stopped with the final signature, forwarders drain).
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from weightwarden.agent.config import load_config
from weightwarden.agent.events import Action, Category, Event
from weightwarden.agent.evidence import Evidence
from weightwarden.agent.store import RecordWriter, Store


def main() -> int:
    config = load_config(sys.argv[1])
    total, rate = int(sys.argv[2]), float(sys.argv[3])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = Store(config.database_path)
    done = [e["details"]["n"] for e in store.events(limit=500) if e["event"]["action"] == "model-modified"]
    n = max(done) + 1 if done else 0
    holder: list[Evidence] = []
    writer = RecordWriter(store, batch_size=200, flush_seconds=0.02,
                          on_written=lambda records: holder[0].written(records) if holder else None)
    evidence = Evidence(config, store, writer, writer.submit, lambda: {"coverage": "chaos-test"})
    holder.append(evidence)
    evidence.start()
    print(f"ready at n={n}", flush=True)  # the chaos test waits for this before disrupting again
    started, first = time.monotonic(), n
    while n < total and not stop.is_set():
        writer.submit(Event(Action.MODEL_MODIFIED, Category.FILE, f"chaos event {n}", details={"n": n}))
        n += 1
        ahead = (n - first) / rate - (time.monotonic() - started)
        if ahead > 0:
            stop.wait(ahead)
    print(f"produced up to {n}", flush=True)
    stop.wait()
    # as the agent stops (agent/service.py): agent-stopped, signing everything before it, is the last record
    writer.submit(Event(Action.AGENT_STOPPED, Category.HOST, "chaos agent stopped", details=evidence.final_signature()))
    evidence.stop()
    writer.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
