"""Events from short fixture mappings: the rule fixtures (tests/agent/detect/fixtures) and the replay bench.

A fixture event is a flat mapping, far shorter than the Event it stands for:

    {at: 1.5, action: model-read, path: /m/a.safetensors, model: llama, size: 1000, bytes_read: 1000,
     mapped: false, process: {pid: 10, name: scp, exe: /usr/bin/scp, cmd: "scp ...", user: ana, session: 7,
     parents: [bash]}}
    {at: 3, action: network-connection, process: {...}, address: 203.0.113.9, port: 22, bytes_sent: 600}
    {at: 4, copy: removable, path: /media/usb/a.safetensors, model: llama}   # a new file: a CopyCandidate
    {at: 5, copy: local, path: /home/ana/x.gguf, model: llama, derived: {tensors: [3, 10], bytes: [30, 100]}}

`at` is seconds after the fixture's start time. A `copy:` entry (the destination kind) stands for a new
file matching a protected model (`source:`, default /models/MODEL/model.safetensors), byte for byte, or
with `derived:` for a share of its tensors (matched and total tensors, matched and total bytes, optionally
the similarity and sign agreement), written by `process:` when given.

A `lineage:` entry is one step of a flow's accounting, fed to the lineage ledger (agent/detect/lineage.py)
the way the agent's flow tracker feeds it:

    {at: 0, lineage: read, flow: 1, path: /m/a.safetensors, model: a, size: 1000, bytes: 1000, process: {...}}
    {at: 1, lineage: wrote, flow: 1, path: /home/ana/out.zip, place: local, bytes: 900, state: other}
    {at: 1, lineage: sent, flow: 1, address: 203.0.113.9, port: 443, bytes: 900}
    {at: 1, lineage: member, flow: 1, process: {pid: 51, name: curl}}  # joined by a pipe: named by pid only
    {at: 3, lineage: inherit, flow: 2, path: /home/ana/out.zip, bytes: 900}  # read an output: if it is tainted
    {at: 2, lineage: decide}                        # the decisions due by then

`state` says what the file pipeline made of an output file (other, copy, model, pending).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from weightwarden.agent.detect.copy import CopyCandidate
from weightwarden.agent.detect.lineage import OTHER, LineageLedger
from weightwarden.agent.events import Action, Alert, Category, Event, FileInfo, ModelFile, ProcessInfo, ProcessRef
from weightwarden.agent.pipeline.serving_events import served_event, traffic_event
from weightwarden.agent.serving.observations import PeerTraffic, ServedModel, Server, ServingStarted
from weightwarden.agent.similarity.matcher import TensorMatch

START = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def process_from(raw: Mapping[str, Any] | None) -> ProcessInfo | None:
    if raw is None:
        return None
    parents = tuple(ProcessRef(pid=int(raw.get("pid", 100)) - 1 - index, name=name if isinstance(name, str) else None)
                    for index, name in enumerate(raw.get("parents", [])))
    name = raw.get("name")
    return ProcessInfo(pid=int(raw.get("pid", 100)), name=name, executable=raw.get("exe", f"/usr/bin/{name}"),
                       command_line=raw.get("cmd", name), user=raw.get("user", "ana"), uid=raw.get("uid", 1000),
                       ppid=parents[0].pid if parents else None, session_id=raw.get("session", 1),
                       parents=parents, bytes_read=raw.get("bytes_read"), mapped=raw.get("mapped"),
                       # what it runs, as the sensor reads it (agent/executables.py): fixtures name it when it
                       # matters (a renamed binary, an interpreter, a program run through ld.so)
                       executable_sha256=raw.get("exe_sha256", raw.get("sha256")), program=raw.get("program"),
                       program_sha256=raw.get("sha256"), interpreter=raw.get("interpreter"),
                       script=raw.get("script"))


@dataclass(frozen=True, slots=True)
class LineageStep:
    """One `lineage:` fixture entry (see the module's docstring)."""

    raw: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, ledger: LineageLedger, states: dict[str, str]) -> list[Alert]:
        """Feed the step to the ledger; the alerts a `decide` step raises. `states`: outputs' file states."""
        raw, at = self.raw, float(self.raw.get("at", 0))
        op, flow = str(raw["lineage"]), int(raw.get("flow", 1))
        process = process_from(raw.get("process")) or ProcessInfo(pid=100 + flow, name="proc", user="ana", uid=1000)
        if op == "read":
            ledger.read(flow, process, str(raw.get("model", "model")), str(raw["path"]), raw.get("size"),
                        raw.get("bytes"), at)
        elif op == "wrote":
            states[str(raw["path"])] = str(raw.get("state", OTHER))
            ledger.wrote(flow, process, str(raw["path"]), str(raw.get("place", "local")), int(raw["bytes"]),
                         None, None, at)
        elif op == "sent":
            ledger.sent(flow, process, f"{raw.get('address')}:{raw.get('port')}/{raw.get('local_port', 40000)}",
                        str(raw["address"]), raw.get("port"), int(raw["bytes"]), at)
        elif op == "inherit":  # as the flow tracker does when a file read is a tainted output
            taint = ledger.taint(0, 0, str(raw["path"]))
            if taint is not None:
                ledger.inherit(flow, process, taint, str(raw["path"]), int(raw["bytes"]), at)
        elif op == "member":  # as the flow tracker names a process it joins: pid and name, not its program
            ledger.member(flow, ProcessInfo(pid=process.pid, name=process.name), at)
        elif op == "decide":
            return ledger.decide(at, lambda path: states.get(path, OTHER))
        else:
            raise ValueError(f"unknown lineage step {op!r}")
        return []


def event_from(raw: Mapping[str, Any], start: datetime = START) -> Event | CopyCandidate | LineageStep:
    """The Event (or, for `copy:`, the CopyCandidate of a new file; for `lineage:`, a step of a flow's
    accounting) a fixture mapping stands for."""
    moment = start + timedelta(seconds=float(raw.get("at", 0)))
    if "copy" in raw:
        return copy_candidate_from(raw)
    if "lineage" in raw:
        return LineageStep(raw)
    action = Action(str(raw["action"]))
    process = process_from(raw.get("process"))
    if process is not None and action in (Action.MODEL_READ, Action.MODEL_HELD):
        process = ProcessInfo(**{**{k: getattr(process, k) for k in ProcessInfo.__dataclass_fields__},
                                 "bytes_read": raw.get("bytes_read", raw.get("size")), "mapped": raw.get("mapped")})
    if action == Action.NETWORK_CONNECTION:
        return Event(action, Category.NETWORK, f"connection to {raw.get('address')}:{raw.get('port')}",
                     process=process, time=moment,
                     details={"phase": raw.get("phase", "closed"),
                              "destination": {"kind": "network", "address": raw.get("address"),
                                              "port": raw.get("port")},
                              "source": {"address": "10.0.0.2", "port": raw.get("local_port", 40000)},
                              "bytes_sent": raw.get("bytes_sent")})
    if action in (Action.MODEL_SERVED, Action.SERVING_TRAFFIC):
        return serving_event_from(action, raw, process, moment)
    path = raw.get("path")
    file = FileInfo(path=str(path), size=raw.get("size")) if path else None
    who = f"{process.name} (pid {process.pid})" if process else "?"
    return Event(action, Category.FILE, f"{who} {action.value} {path}", file=file, model=raw.get("model"),
                 process=process, time=moment)


def serving_event_from(action: Action, raw: Mapping[str, Any], process: ProcessInfo | None, at: datetime) -> Event:
    """A model server's event, made by the pipeline's own builders (agent/pipeline/serving_events.py):

        {at: 0, action: model-served, address: 0.0.0.0, port: 11434, reach: all-interfaces, protocol: ollama,
         authenticated: false, model: llama, process: {...}}
        {at: 5, action: serving-traffic, address: 0.0.0.0, port: 11434, peer: 203.0.113.9, connections: 1500,
         bytes_received: 300000, bytes_sent: 9000000, model: llama, process: {...}}
    """
    model = str(raw.get("model", "model"))
    server = Server(int(raw.get("netns", 4026531840)), str(raw.get("address", "0.0.0.0")), int(raw.get("port", 8000)),
                    str(raw.get("reach", "all-interfaces")), process.pid if process else 100, process,
                    (ServedModel(model, str(raw.get("path", f"/models/{model}/model.safetensors")), True),),
                    raw.get("protocol", "openai"), raw.get("authenticated", False), "fixture")
    if action == Action.MODEL_SERVED:
        return served_event(ServingStarted(server), at)
    return traffic_event(PeerTraffic(server, str(raw["peer"]), int(raw.get("connections", 1)), int(raw.get("open", 0)),
                                     int(raw.get("bytes_received", 0)), int(raw.get("bytes_sent", 0))), at)


def copy_candidate_from(raw: Mapping[str, Any]) -> CopyCandidate:
    model = str(raw.get("model", "model"))
    path = str(raw.get("path", "/tmp/copy.safetensors"))
    source = ModelFile(path=str(raw.get("source", f"/models/{model}/model.safetensors")), format="safetensors",
                       size=int(raw.get("size", 4096)), model=model, sha256=raw.get("sha256"),
                       quick_fingerprint=raw.get("quick_fingerprint", "q" * 32))
    derived = raw.get("derived")
    fmt = str(raw.get("format", "safetensors" if derived is None else "gguf"))
    new = ModelFile(path=path, format=fmt, size=source.size, model=model,
                    sha256=source.sha256 if derived is None else None,
                    quick_fingerprint=source.quick_fingerprint if derived is None else None)
    process = process_from(raw.get("process"))
    if derived is None:
        return CopyCandidate(new, (source,), (), str(raw["copy"]), process=process)
    (matched, total), (matched_bytes, total_bytes) = derived["tensors"], derived["bytes"]
    match = TensorMatch(model, (source.path,), int(matched), int(total), int(matched_bytes), int(total_bytes),
                        int(matched_bytes), int(total_bytes), similarity=float(derived.get("similarity", 0.0)),
                        agreement=float(derived.get("agreement", 0.0)))
    return CopyCandidate(new, (), (match,), str(raw["copy"]), process=process)
