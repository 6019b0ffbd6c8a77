"""Scale: a fleet of agents' signed, chained records replayed into the central index over `_bulk`.

    .venv/bin/python -m bench.fleet_scale [--agents 10] [--records 100] [--verify-hosts 5] [--paint RUNS]
                                          [--work DIR] [--json]
    .venv/bin/python -m bench.fleet_scale --report RUNS.jsonl [--write-docs]

Each simulated agent is a real agent's evidence, made by the agent's own code: its own data directory, its
own Ed25519 key (agent/keys.py), its own log (store/store.py writes every record and its chain link), a
checkpoint signed every `--checkpoint-every` records (agent/evidence.py) and a clean stop's signature at
the end. The records are the ones an endpoint writes: agent-started, model files created, opened and read
by processes, heartbeats, and the engine's real alerts (tests/gui/helpers.make_alert) for one record in
`--alert-every`. Then every agent's log is read back through the forwarders' outbox (store/outbox.py: the
record, its link and the link before it) and delivered by the `_bulk` destination's transport
(forward/bulk_transport.py, ECS with the chain place, `create` with `_id` = record id) into one index of
osmem-server, the OpenSearch-compatible server of the tests, `--batch` records per request.

Measured: the ingest rate (documents per second of `_bulk` requests, their rendering apart), the server's
memory, `weightwarden verify --from URL --host H --public-key K` for a few hosts (in process, the CLI's own
entry point), and with `--paint` the fleet view's first paint (`weightwarden-gui --central URL`: the
FleetWindow of gui/fleet_window.py, offscreen, as bench/fleet_view.py opens it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INDEX = "logs-weightwarden.fleet-scale"


@dataclass(frozen=True)
class SimulatedAgent:
    host: str
    database: Path
    public_key: Path  # the agent's public key as the SIEM side registers it (`weightwarden keys export`)
    last: int  # its last sequence


@dataclass
class Ingest:
    documents: int = 0
    requests: int = 0
    http_seconds: float = 0.0  # the `_bulk` requests alone
    render_seconds: float = 0.0  # outbox read and ECS rendering in the agent's transport
    wall_seconds: float = 0.0
    steps: list[int] = field(default_factory=list)  # documents per request, in order
    step_seconds: list[float] = field(default_factory=list)  # and its time

    @property
    def rate(self) -> float:
        return self.documents / self.http_seconds if self.http_seconds else 0.0

    def rate_of_tenth(self, tenth: int) -> float:
        """The rate of the requests of one tenth of the run (0: the first, 9: the last, into a full index)."""
        count = len(self.steps)
        part = slice(count * tenth // 10, max(count * (tenth + 1) // 10, count * tenth // 10 + 1))
        seconds = sum(self.step_seconds[part])
        return sum(self.steps[part]) / seconds if seconds else 0.0


@dataclass
class Scale:
    agents: int
    records: int
    generate_seconds: float = 0.0
    ingest: Ingest = field(default_factory=Ingest)
    verify_seconds: list[float] = field(default_factory=list)
    verified_records: int = 0
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    bytes_per_document: float = 0.0  # the NDJSON document line as sent
    paint: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ the agents


def host_name(number: int) -> str:
    return f"ws-{number:04d}"


def _records(host_number: int, first: int, count: int, alert_every: int) -> list[Any]:
    """`count` records an endpoint writes, numbered from `first` (the record's place, not its sequence)."""
    from tests.gui.helpers import make_alert
    from weightwarden.agent.events import Action, Category, Event, FileInfo, ProcessInfo

    records: list[Any] = []
    for n in range(first, first + count):
        if alert_every and (n + host_number) % alert_every == alert_every - 1:  # hosts' alerts at different places
            records.append(make_alert(host_number * 7 + n))
            continue
        model = f"/srv/models/team-{host_number % 17}/model-{n % 23}.safetensors"
        who = ProcessInfo(pid=2000 + n % 5000, name="python3", executable="/usr/bin/python3.11",
                          command_line=f"python3 train.py --checkpoint {model}", user=f"user{host_number % 40}",
                          uid=1000 + host_number % 40, ppid=1999)
        step = n % 10
        if step == 0:
            records.append(Event(Action.HEARTBEAT, Category.HOST, "heartbeat",
                                 details={"coverage": "full", "backlog": 0, "last_sequence": n}))
        elif step in (1, 2):
            size = 1_000_000 + (n * 7919) % 50_000_000
            records.append(Event(Action.MODEL_CREATED, Category.FILE, f"model created: {model}",
                                 file=FileInfo(path=model, size=size, format="safetensors",
                                               sha256=f"{(host_number << 32) | n:064x}"),
                                 model=f"model-{n % 23}", process=who))
        elif step in (3, 4, 5):
            records.append(Event(Action.MODEL_OPENED, Category.FILE, f"model opened: {model}",
                                 file=FileInfo(path=model), model=f"model-{n % 23}", process=who))
        else:
            records.append(Event(Action.MODEL_READ, Category.FILE, f"model read: {model}",
                                 file=FileInfo(path=model, size=4096 * n), model=f"model-{n % 23}",
                                 process=ProcessInfo(pid=who.pid, name=who.name, executable=who.executable,
                                                     user=who.user, uid=who.uid, bytes_read=4096 * n,
                                                     mapped=n % 2 == 0)))
    return records


def simulate_agent(root: Path, host_number: int, records: int, *, checkpoint_every: int = 100,
                   alert_every: int = 20, write_batch: int = 50) -> SimulatedAgent:
    """One agent's log: agent-started, `records` records with a signed checkpoint every `checkpoint_every`,
    and a clean stop whose signature covers the whole log, all by the agent's own code."""
    from weightwarden.agent.config import load_config
    from weightwarden.agent.events import Action, Category, Event
    from weightwarden.agent.evidence import Evidence
    from weightwarden.agent.keys import PUBLIC_KEY_NAME
    from weightwarden.agent.store import RecordWriter, Store

    host = host_name(host_number)
    home = root / host
    home.mkdir(parents=True, exist_ok=True)
    config_file = home / "agent.toml"
    config_file.write_text(f'[agent]\ndata_dir = "{home / "data"}"\nname = "{host}"\n')
    config = load_config(config_file)
    with contextlib.closing(Store(config.database_path)) as store, \
            contextlib.closing(RecordWriter(store)) as writer:

        def record(one: Any) -> None:
            store.write([one])

        evidence = Evidence(config, store, writer, record, dict)
        store.write([Event(Action.AGENT_STARTED, Category.HOST, "agent started", details={"version": "sim"})])
        written = 0
        while written < records:
            count = min(write_batch, records - written, checkpoint_every - written % checkpoint_every)
            store.write(_records(host_number, written, count, alert_every))
            written += count
            if written % checkpoint_every == 0:
                evidence.checkpoint("periodic")
        stop = Event(Action.AGENT_STOPPED, Category.HOST, "agent stopped", details=evidence.final_signature())
        store.write([stop])
        last = store.chain_head()[0]
    return SimulatedAgent(host, Path(config.database_path), Path(config.data_dir) / PUBLIC_KEY_NAME, last)


def simulate_fleet(root: Path, agents: int, records: int, *, checkpoint_every: int = 100,
                   alert_every: int = 20, progress: Callable[[str], None] | None = None) -> list[SimulatedAgent]:
    fleet = []
    for number in range(agents):
        fleet.append(simulate_agent(root, number, records, checkpoint_every=checkpoint_every,
                                    alert_every=alert_every))
        if progress is not None:
            progress(f"agents written {number + 1:,}/{agents:,}")
    return fleet


# ------------------------------------------------------------------------------------------ delivery


class _TimedRequests:
    """Wraps the transport's HTTP client to add up the time spent in `_bulk` requests alone."""

    def __init__(self, client: Any, ingest: Ingest) -> None:
        self.client = client
        self.ingest = ingest
        self.sent_bytes = 0

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        began = time.perf_counter()
        answer: tuple[int, bytes] = self.client.request(method, path, body, headers)
        self.ingest.http_seconds += time.perf_counter() - began
        self.ingest.requests += 1
        self.ingest.steps.append((body or b"").count(b"\n") // 2)
        self.ingest.step_seconds.append(time.perf_counter() - began)
        self.sent_bytes += len(body or b"")
        return answer

    def close(self) -> None:
        self.client.close()


def replay(fleet: list[SimulatedAgent], url: str, *, index: str = INDEX, batch: int = 500,
           progress: Callable[[str], None] | None = None) -> tuple[Ingest, int]:
    """Every agent's log through the outbox and the `_bulk` transport, as its forwarder sends it;
    (what it cost, the bytes of the documents sent)."""
    from weightwarden.agent.forward.bulk_transport import BulkTransport
    from weightwarden.agent.forward.render import Renderer
    from weightwarden.agent.store.outbox import Outbox

    ingest = Ingest()
    sent_bytes = 0
    began = time.perf_counter()
    for done, agent in enumerate(fleet, 1):
        # A longer timeout than the agent's 15 s default: osmem answers a large _bulk slowly on a busy machine,
        # and a retried batch would count twice here.
        transport = BulkTransport(Renderer(host=agent.host, format="ecs"), url=url, index=index, timeout=300.0)
        timed = _TimedRequests(transport.client, ingest)
        transport.client = timed  # type: ignore[assignment]  # same request()/close(), timed
        outbox = Outbox(agent.database, read_only=True)
        try:
            cursor = 0
            while cursor < agent.last:
                records = outbox.after(cursor, batch)
                http_before = ingest.http_seconds
                sent = time.perf_counter()
                outcome = transport.send(records)
                ingest.render_seconds += time.perf_counter() - sent - (ingest.http_seconds - http_before)
                if outcome.dead or outcome.delivered != len(records):
                    raise SystemExit(f"{agent.host}: _bulk delivered {outcome.delivered} of {len(records)}, "
                                     f"dead letters: {[reason for _r, reason in outcome.dead][:2]}")
                ingest.documents += outcome.delivered
                cursor = records[-1].sequence
        finally:
            outbox.close()
            transport.close()
        sent_bytes += timed.sent_bytes
        if progress is not None:
            progress(f"agents delivered {done:,}/{len(fleet):,}, {ingest.documents:,} documents")
    ingest.wall_seconds = time.perf_counter() - began
    return ingest, sent_bytes


# ------------------------------------------------------------------------------------------ the centre


def call(url: str, path: str, method: str = "GET", body: bytes | None = None) -> Any:
    request = urllib.request.Request(url + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read() or b"{}")


def verify_host(url: str, agent: SimulatedAgent, index: str = INDEX) -> tuple[int, dict[str, Any]]:
    """`weightwarden verify --json --from URL/INDEX --host H --public-key K`, the CLI in process:
    (exit code, its JSON report)."""
    from weightwarden.agent.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["verify", "--json", "--from", f"{url}/{index}", "--host", agent.host,
                     "--public-key", str(agent.public_key)])
    return code, json.loads(out.getvalue()) if out.getvalue().strip() else {}


def first_paint(url: str, runs: int) -> dict[str, float]:
    """The fleet window opened `runs` times on the index: medians of built and first paint (seconds), and
    the alert count the view showed."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from bench.fleet_view import open_first_page
    from weightwarden.gui import style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    style.apply(app)  # type: ignore[arg-type]
    found: dict[str, list[float]] = {"built": [], "first_paint": []}
    total = 0
    for _ in range(runs):
        window, source, figures = open_first_page(app, url)
        total = window.alerts.model.total
        sent = source.requests()
        window.close()
        assert max((body.get("from", 0) for body in sent), default=0) == 0
        for name in found:
            found[name].append(figures[name])
    return {"alerts": total, **{name: statistics.median(values) for name, values in found.items()}}


def osmem_rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    """The server's resident memory now (VmRSS) or at its peak (VmHWM), in MB."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def osmem(gogc: int | None = None) -> Iterator[Any]:
    """osmem-server with the shipped index template; `gogc`: its Go garbage collector's GOGC (default 100:
    the heap may grow to twice what is live before a collection)."""
    from osmem_server import OsmemServer

    from bench.fleet_view import install_template

    saved = os.environ.get("GOGC")
    if gogc is not None:
        os.environ["GOGC"] = str(gogc)
    try:
        server = OsmemServer.start(japanese=False)
    finally:
        if gogc is not None:
            if saved is None:
                os.environ.pop("GOGC", None)
            else:
                os.environ["GOGC"] = saved
    try:
        install_template(server.url)
        yield server
    finally:
        server.close()
        if server.process.stdout is not None:
            server.process.stdout.close()


# ------------------------------------------------------------------------------------------ one run


def run(agents: int, records: int, *, verify_hosts: int, paint_runs: int, work: Path, batch: int,
        checkpoint_every: int, alert_every: int, progress: Callable[[str], None], gogc: int | None = None
        ) -> Scale:
    scale = Scale(agents, records)
    began = time.perf_counter()
    fleet = simulate_fleet(work, agents, records, checkpoint_every=checkpoint_every, alert_every=alert_every,
                           progress=progress)
    scale.generate_seconds = time.perf_counter() - began
    with osmem(gogc) as server:
        scale.ingest, sent_bytes = replay(fleet, server.url, batch=batch, progress=progress)
        scale.bytes_per_document = sent_bytes / max(1, scale.ingest.documents)
        call(server.url, f"/{INDEX}/_refresh", "POST")
        scale.rss_mb = osmem_rss_mb(server.pid)
        scale.peak_rss_mb = osmem_rss_mb(server.pid, "VmHWM")
        step = max(1, len(fleet) // max(1, verify_hosts))
        for agent in fleet[::step][:verify_hosts]:
            began = time.perf_counter()
            code, report = verify_host(server.url, agent)
            scale.verify_seconds.append(time.perf_counter() - began)
            if code != 0 or report.get("records") != agent.last:
                raise SystemExit(f"verify --from refused {agent.host}: {json.dumps(report)[:600]}")
            scale.verified_records = agent.last
        if paint_runs:
            scale.paint = first_paint(server.url, paint_runs)
    return scale


def markdown(runs: list[dict[str, Any]]) -> str:
    """The docs/benchmarks.md section for runs of `--json` output (one per size), smallest first."""
    runs = sorted(runs, key=lambda r: (r["documents"], -(r.get("gogc") or 100)))  # the default GOGC first
    lines = [
        "## Fleet scale: 1,000 agents into the central index (`bench/fleet_scale.py`)",
        "",
        "Simulated agents, each with its own host name, Ed25519 key and log written by the agent's own store "
        "(chain links, a signed checkpoint every 100 records, a clean stop's signature); one record in 20 is "
        "one of the engine's real alerts, the others heartbeats and model files created, opened and read. "
        "Each log read back through the forwarders' outbox and delivered by the `_bulk` transport (ECS with "
        "the chain place, one agent after another, at most 500 records a request: the destination's default "
        "`batch_size`) into one index of osmem-server "
        f"{runs[0].get('osmem', '')} (in-memory, OpenSearch-compatible, the shipped mappings). Then "
        "`weightwarden verify --from URL --host H --public-key K` (the CLI, in process) for 10 hosts spread "
        "over the fleet, each accepted, and the fleet window (offscreen) opened 3 times for its first page of "
        "alerts. 2 CPU cores shared with other work (load average at each start in the last column). Each row: "
        "`python -m bench.fleet_scale --agents 1000 --records N --verify-hosts 10 (--paint 3 | --gogc G) --json`; "
        "the table: `--report` over their output.",
        "",
        "| documents | agents x records | NDJSON per document | `_bulk` ingest (HTTP time only) | first / last tenth "
        "of requests | osmem-server RSS after ingest (peak) | verify --from per host (median) | fleet view "
        "first paint (median) | load at start |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        verify = statistics.median(r["verify_seconds"]) * 1000
        paint = r.get("paint") or {}
        painted = (f"{paint['first_paint'] * 1000:,.0f} ms ({int(paint['alerts']):,} alerts)" if paint
                   else "not measured")
        shape = f"{r['agents']:,} x {r['records']:,}" + (f" (osmem-server GOGC={r['gogc']})" if r.get("gogc") else "")
        lines.append(
            f"| {r['documents']:,} | {shape} | {r['bytes_per_document'] / 1024:.2f} KB "
            f"| {r['rate']:,.0f} docs/s ({r['http_seconds']:,.0f} s) | {r['rate_first_tenth']:,.0f} / "
            f"{r['rate_last_tenth']:,.0f} docs/s | {r['rss_mb']:,.0f} MB = {r['rss_mb'] * 1024 / r['documents']:,.1f}"
            f" KB/doc ({r['peak_rss_mb']:,.0f} MB) | {verify:,.0f} ms ({r['verified_records']:,} records) | "
            f"{painted} | {r['loadavg'][0]:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10, help="simulated agents (hosts, keys)")
    parser.add_argument("--records", type=int, default=100, help="records per agent, beside start and stop")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--alert-every", type=int, default=20, help="one engine alert in N records")
    parser.add_argument("--batch", type=int, default=500, help="records per _bulk request")
    parser.add_argument("--verify-hosts", type=int, default=5)
    parser.add_argument("--paint", type=int, default=0, metavar="RUNS", help="fleet window openings to time")
    parser.add_argument("--work", type=Path, help="where the agents' logs go (default: a temporary folder)")
    parser.add_argument("--gogc", type=int, help="osmem-server's GOGC (its Go collector; default 100)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--report", type=Path, metavar="JSONL",
                        help="print the section for earlier --json runs (one line each) instead of running")
    parser.add_argument("--write-docs", action="store_true", help="with --report: write it to docs/benchmarks.md")
    args = parser.parse_args()
    if args.report:
        text = markdown([json.loads(line) for line in args.report.read_text().splitlines() if line.strip()])
        print(text)
        if args.write_docs:
            from bench.sections import write_section
            write_section("fleet-scale", text)
        return 0

    def progress(text: str) -> None:
        print(f"\r  {text}", end="", file=sys.stderr, flush=True)

    loadavg = os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="ww-fleet-scale-"))
    try:
        scale = run(args.agents, args.records, verify_hosts=args.verify_hosts, paint_runs=args.paint,
                    work=work, batch=args.batch, checkpoint_every=args.checkpoint_every,
                    alert_every=args.alert_every, progress=progress, gogc=args.gogc)
    finally:
        print(file=sys.stderr)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"loadavg": loadavg, "osmem": importlib.metadata.version("osmem-server"),
                          "agents": scale.agents, "records": scale.records,
                          "generate_seconds": scale.generate_seconds, "documents": scale.ingest.documents,
                          "requests": scale.ingest.requests, "http_seconds": scale.ingest.http_seconds,
                          "render_seconds": scale.ingest.render_seconds, "wall_seconds": scale.ingest.wall_seconds,
                          "rate": scale.ingest.rate, "rate_first_tenth": scale.ingest.rate_of_tenth(0),
                          "rate_last_tenth": scale.ingest.rate_of_tenth(9),
                          "rate_tenths": [scale.ingest.rate_of_tenth(tenth) for tenth in range(10)],
                          "rss_mb": scale.rss_mb,
                          "peak_rss_mb": scale.peak_rss_mb, "bytes_per_document": scale.bytes_per_document,
                          "gogc": args.gogc, "verify_seconds": scale.verify_seconds,
                          "verified_records": scale.verified_records, "paint": scale.paint}))
    else:
        print(f"{scale.ingest.documents:,} documents, {scale.ingest.rate:,.0f} docs/s, osmem {scale.rss_mb:,.0f} MB, "
              f"verify {statistics.median(scale.verify_seconds) * 1000:,.0f} ms/host, paint {scale.paint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
