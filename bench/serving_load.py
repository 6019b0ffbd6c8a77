"""The load generator of bench/serving.py, run inside the peers' network namespace: `processes` processes,
each with its share of the peers (source addresses), each peer pacing its own requests; every request on
a new connection (connect, one POST, read the answer to its end). Prints one JSON line: requests done,
failures, latency p50/p99 in ms, and the wall time at which each of the first `mark` requests finished
(the budget-crossing probe).

    python -m bench.serving_load HOST PORT RATE SECONDS SOURCES(comma) PROCESSES [MARK]
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import sys
import time

REQUEST = (b"POST /api/generate HTTP/1.1\r\nHost: model\r\nContent-Type: application/json\r\n"
           b"Content-Length: 16\r\nConnection: close\r\n\r\n{\"prompt\": \"hi\"}")


def one(host: str, port: int, source: str) -> bool:
    sock = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
    try:
        sock.sendall(REQUEST)
        got = 0
        while chunk := sock.recv(65536):
            got += len(chunk)
        return got > 0
    finally:
        sock.close()


def worker(host: str, port: int, rate: float, seconds: float, sources: list[str], mark: int,
           out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    interval = 1.0 / rate if rate else 0.0
    start = time.monotonic()
    done = failed = 0
    latencies: list[float] = []
    finished: list[float] = []
    n = 0
    while time.monotonic() - start < seconds:
        if interval:
            due = start + n * interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        t0 = time.perf_counter()
        try:
            ok = one(host, port, sources[n % len(sources)])
        except Exception:  # counted as a failure: the run goes on
            ok = False
        latencies.append(time.perf_counter() - t0)
        done += ok
        failed += not ok
        if len(finished) < mark:
            finished.append(time.time())
        n += 1
    out.put({"done": done, "failed": failed, "latencies": latencies, "finished": finished,
             "seconds": time.monotonic() - start})


def main() -> int:
    host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    sources, processes = sys.argv[5].split(","), int(sys.argv[6])
    mark = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    processes = max(1, min(processes, len(sources)))
    shares = [sources[i::processes] for i in range(processes)]
    workers = [multiprocessing.Process(target=worker, args=(host, port, rate / processes, seconds, share, mark, out))
               for share in shares]
    for w in workers:
        w.start()
    results = [out.get() for _ in workers]
    for w in workers:
        w.join()
    latencies = sorted(x for r in results for x in r["latencies"])
    pick = (lambda q: round(latencies[min(int(q * len(latencies)), len(latencies) - 1)] * 1000, 2)) \
        if latencies else (lambda q: None)
    print(json.dumps({"done": sum(r["done"] for r in results), "failed": sum(r["failed"] for r in results),
                      "seconds": max(r["seconds"] for r in results), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                      "finished": sorted(t for r in results for t in r["finished"])[:mark]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
