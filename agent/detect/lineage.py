"""Rule `model-lineage`: what each flow read from protected models and what it wrote and sent, and the one
alert per flow once its outputs reach `ratio` of what it read (correlations/lineage.py).

Pure: the agent's flow tracker (agent/pipeline/flows.py) decides which flow a process belongs to (fork,
pipes, local sockets: it reads /proc) and feeds this ledger flow ids with what happened; time comes from
the caller. One thread (the dispatcher) calls it.

Decisions, and why:
- X is the protected bytes the flow read (fd position at close; a memory-mapped or unmeasured read counts
  as the whole file; a file still held open counts as its size, the most it can have read so far: an
  uploader that keeps the model open while it sends is judged during the upload, not after). Outputs are
  counted in bytes: a file by its size at its last close, at most its allocated blocks (a sparse file
  claims what it never wrote), a connection by the bytes sent. The
  share is output / X, capped at 1 (base64 writes 4/3 of its input, an archive's headers add some); the
  uncapped figure is output_bytes beside bytes_read.
- Output files that are model files are not this rule's: a byte or tensor copy is model-copy's alert
  (folded here as `recognised-copy`, never a second alert), and a model file written into a local place
  (a fine-tune's checkpoint) is inventoried and protected in its own right (`model-file`). A model file a
  flow writes to a stick, a share or a sync folder that model-copy did not recognise still counts.
- The alert waits GRACE_SECONDS after the threshold is reached, and for the outputs still being examined
  (is it a copy?) at most PENDING_SECONDS, so one alert names every output of a quick flow (zip writes a
  temporary file and renames it; split writes many parts). Later outputs update the incident (a new
  alert record naming the first), coalesced the same way.
- Outputs inherit the taint: each counted output file is remembered by (device, inode) and path with the
  model and the share it holds; a flow that reads it later joins the same incident. An output that alone
  holds `ratio` of what the flow read is remembered as soon as it is written (a copy of it may be read
  milliseconds later), the others at the decision.
- An output file deleted before its close (`gone`) keeps its `deleted` state; how its bytes were measured
  is said (`measure`: size, held-open, writes-upper-bound), and so is a connection whose process was
  inferred (`owner`). When only a fresh writes-upper-bound would carry a flow over the threshold, the
  decision waits up to BOUND_WAIT_SECONDS for the rename that usually follows (a lock file renamed into
  place), which measures the file and drops the bound.
- Allowlists exempt what an allowlisted process does, not the bytes it handles. A process the rule's
  allowlists name (its real program by path and, when given, SHA-256, or its user: the engine's matching,
  `exempt`) writes and sends without its outputs counting (state `allowlisted`): a backup tool reading the
  model and writing its repository raises nothing. Its reads still count as what the flow holds, so a
  process that is not allowlisted and is joined to it (`restic dump ... | curl -T -`) is judged on what it
  writes or sends as before; and its outputs still carry the taint when, counted, they would have reached
  `ratio` (a later reader that is not allowlisted, copying the backup to a stick, is judged on it).
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from weightwarden.agent.alert_evidence import LineageEvidence, LineageOutput, TimelineEntry
from weightwarden.agent.detect.correlations.copy import severity_for
from weightwarden.agent.detect.rules import Rule
from weightwarden.agent.events import Alert, Destination, ProcessInfo, display_path, format_time, new_id, utc_now

RULE_ID = "model-lineage"
GRACE_SECONDS = 0.3
# An output gone at its close is bounded by everything its writer wrote (writes-upper-bound); most such
# files were renamed, not deleted (git's HEAD.lock -> HEAD), and the rename, when it comes, replaces the
# bound by the file's size (moved). When only such a bound would carry the flow over the threshold, the
# decision waits this long after it for the rename: on a loaded machine it can come after the grace.
BOUND_WAIT_SECONDS = 1.0
PENDING_SECONDS = 1.2
PROCESSES_KEPT = 64  # per flow, named in the evidence; the count goes on
OUTPUTS_KEPT = 256  # per flow; further outputs are summed into the last one's place ("... more")
FLOWS_KEPT = 4096
TAINTS_KEPT = 16384
FLOW_IDLE_SECONDS = 3600.0
LEAVING_PLACES = ("removable", "network-share", "cloud-sync", "disk-image")

# What the file pipeline says about an output file: still being looked at, a model-copy, a model file, other.
PENDING, COPY, MODEL, OTHER = "pending", "copy", "model", "other"
FileState = Callable[[str], str]
# Whether the allowlists exempt a process (the engine's allowlist matching: real program by path and hash, user).
Exemption = Callable[[ProcessInfo], bool]


@dataclass(slots=True)
class _Read:
    model: str
    path: str
    size: int
    bytes: int
    open: bool = False  # opened, not closed yet: it may have read the whole file by now

    def counted(self) -> int:
        return max(self.bytes, self.size) if self.open else self.bytes


@dataclass(slots=True)
class _Output:
    kind: str  # file | network
    place: str
    where: str
    bytes: int
    since: float
    device: int | None = None
    inode: int | None = None
    deleted: bool = False
    measure: str = "size"  # LineageOutput.measure
    owner: str = "known"  # LineageOutput.owner
    allowlisted: bool = False  # every process that wrote or sent it is allowlisted: not counted


@dataclass(frozen=True, slots=True)
class Taint:
    """A file a flow wrote from a protected model: which model, how much of it, which incident."""

    flow: int
    model: str
    source_path: str
    share: float


@dataclass(slots=True)
class _Flow:
    id: int
    first: float
    last: float
    processes: dict[tuple[int, int | None], ProcessInfo] = field(default_factory=dict)
    process_count: int = 0
    allowlisted: dict[int, bool] = field(default_factory=dict)  # pid -> exempt, decided when its program was known
    reads: dict[str, _Read] = field(default_factory=dict)
    outputs: OrderedDict[str, _Output] = field(default_factory=OrderedDict)
    more_outputs: int = 0  # outputs beyond OUTPUTS_KEPT (their bytes are in the last kept one's `more`)
    more_bytes: int = 0
    reader: ProcessInfo | None = None
    inherited: Taint | None = None
    inherited_via: str | None = None  # the tainted file it read
    due: float | None = None
    incident: str | None = None
    updates: int = 0
    reported: tuple[frozenset[str], int, int] = (frozenset(), 0, 0)  # (outputs, severity, bytes) last alerted
    timeline: list[TimelineEntry] = field(default_factory=list)


class LineageLedger:
    """Per flow: protected bytes read, outputs written and sent; the model-lineage alerts."""

    def __init__(self, rule: Rule | None, values: Mapping[str, float],
                 destinations_allowed: Sequence[str] = (), exempt: Exemption | None = None) -> None:
        self.rule = rule
        self._exempt = exempt or (lambda process: False)
        self.ratio = float(values.get("ratio", 0.5))
        self.min_bytes = float(values.get("min_bytes", 65536.0))
        self._allowed = tuple(destinations_allowed)
        self._flows: OrderedDict[int, _Flow] = OrderedDict()
        self._taints: OrderedDict[tuple[int, int] | str, Taint] = OrderedDict()
        self.taints_changed = 0  # counts every taint remembered: the caller republishes tainted_paths on change
        self.alerts = 0

    # ------------------------------------------------------------------ what happened

    def read(self, flow: int, process: ProcessInfo, model: str, path: str, size: int | None,
             bytes_read: int | None, now: float) -> None:
        """The flow read (or opened: bytes_read None and not yet closed) a protected file of `model`."""
        state = self._flow(flow, now)
        self._member(state, process)
        got = bytes_read if bytes_read is not None else 0
        known = state.reads.get(path)
        if known is None:
            known = state.reads[path] = _Read(model, path, size or 0, got)
        else:
            known.bytes = max(known.bytes, got)
            known.size = size or known.size
        known.open = bytes_read is None  # an open (the read is reported at its close)
        if state.reader is None or (bytes_read and state.reader.pid != process.pid
                                    and got >= max(r.counted() for r in state.reads.values())):
            state.reader = process

    def member(self, flow: int, process: ProcessInfo, now: float) -> None:
        """A process joined the flow (named in the evidence even if it neither read nor wrote: gzip)."""
        self._member(self._flow(flow, now), process)

    def read_whole(self, flow: int, path: str) -> None:
        """A read measured as nothing but a memory mapping (or unmeasured): count the whole file as read."""
        state = self._flows.get(flow)
        if state is not None and path in state.reads:
            read = state.reads[path]
            read.bytes = max(read.bytes, read.size)

    def inherit(self, flow: int, process: ProcessInfo, taint: Taint, path: str, size: int, now: float) -> None:
        """The flow read a tainted output file: it read `taint.share` of the model, through that file."""
        state = self._flow(flow, now)
        self._member(state, process)
        if state.inherited is None:
            state.inherited, state.inherited_via = taint, path
        model_size = int(size / taint.share) if taint.share > 0 else size
        known = state.reads.get(path)
        if known is None:
            state.reads[path] = _Read(taint.model, taint.source_path, model_size, size)
        if state.reader is None:
            state.reader = process
        origin = self._flows.get(taint.flow)
        if origin is not None and state.incident is None:
            state.incident = origin.incident  # extends the same incident
            state.updates = origin.updates

    def wrote(self, flow: int, process: ProcessInfo, path: str, place: str, size: int,
              device: int | None, inode: int | None, now: float, *, measure: str = "size",
              gone: bool = False) -> None:
        """An output file closed (`measure`: how `size` was measured, LineageOutput.measure; `gone`: deleted
        before its close was looked at)."""
        state = self._flow(flow, now)
        self._member(state, process)
        key = f"{device}:{inode}" if device is not None and inode is not None else path
        allowlisted = state.allowlisted.get(process.pid, False)
        known = state.outputs.get(key)
        if known is None and gone:  # the output its deletion marked
            known = next((o for o in state.outputs.values() if o.kind == "file" and o.where == path), None)
        if known is not None:
            if size >= known.bytes:
                known.bytes, known.measure = size, measure
            known.where, known.place = path, place
            known.deleted = gone
            known.allowlisted = known.allowlisted and allowlisted
        else:
            self._add_output(state, key, _Output("file", place, path, size, now, device, inode, measure=measure,
                                                 deleted=gone, allowlisted=allowlisted))
        self._taint_early(state, path, size, device, inode)
        self._consider(state, now)

    def sent(self, flow: int, process: ProcessInfo | None, connection: str, address: str, port: int | None,
             size: int, now: float, *, owner: str = "known", measure: str = "size") -> None:
        if any(fnmatch.fnmatchcase(address, glob) for glob in self._allowed):
            return
        state = self._flow(flow, now)
        if process is not None:
            self._member(state, process)
        where = f"{address}:{port}" if port is not None else address
        allowlisted = process is not None and state.allowlisted.get(process.pid, False)
        known = state.outputs.get(connection)
        if known is not None:
            known.bytes = max(known.bytes, size)
            known.allowlisted = known.allowlisted and allowlisted
        else:
            self._add_output(state, connection, _Output("network", "network", where, size, now, owner=owner,
                                                        measure=measure, allowlisted=allowlisted))
        self._consider(state, now)

    def moved(self, old: str, new: str, place: str, now: float, *, size: int | None = None,
              device: int | None = None, inode: int | None = None) -> None:
        """An output file renamed (`size`: what it holds now): the outputs that name it follow, and so does
        its taint. An output measured by its writer's write count because its name was gone at its close had
        been renamed, not deleted (git's `index.lock` -> `index`, zip's temporary name): what it holds is
        measured now, and the bound, which counts everything the writer wrote anywhere, is dropped."""
        for state in self._flows.values():
            for out in state.outputs.values():
                if out.kind == "file" and out.where == old:
                    out.where, out.place = new, place
                    if size is not None:
                        if out.measure == "writes-upper-bound":
                            out.bytes, out.measure, out.deleted = size, "size", False
                        else:
                            out.bytes = max(out.bytes, size)
                        out.device, out.inode = out.device or device, out.inode or inode
                    self._consider(state, now)
        if old in self._taints:
            self.taints_changed += 1
            self._taints[new] = self._taints.pop(old)

    def deleted(self, path: str) -> None:
        for state in self._flows.values():
            for out in state.outputs.values():
                if out.kind == "file" and out.where == path:
                    out.deleted = True

    def taint(self, device: int, inode: int, path: str) -> Taint | None:
        """Whether this file is a flow's output holding a protected model's bytes."""
        return self._taints.get((device, inode)) or self._taints.get(path)

    def tainted_paths(self) -> frozenset[str]:
        return frozenset(k for k in self._taints if isinstance(k, str))

    def incident_of(self, flow: int) -> str | None:
        """The incident a flow raised or extends (None: none yet)."""
        state = self._flows.get(flow)
        return None if state is None else state.incident

    def flows(self) -> int:
        return len(self._flows)

    def has_read(self, flow: int) -> bool:
        state = self._flows.get(flow)
        return state is not None and bool(state.reads)

    # ------------------------------------------------------------------ deciding

    def next_due(self) -> float | None:
        dues = [f.due for f in self._flows.values() if f.due is not None]
        return min(dues) if dues else None

    def decide(self, now: float, file_state: FileState) -> list[Alert]:
        """Alerts (first ones and updates) of the flows whose decision is due."""
        found: list[Alert] = []
        for state in list(self._flows.values()):
            if state.due is None or now < state.due:
                continue
            alert = self._decide(state, now, file_state)
            if alert is not None:
                found.append(alert)
        if len(self._flows) > FLOWS_KEPT:
            self._prune(now)
        self.alerts += len(found)
        return found

    def _decide(self, state: _Flow, now: float, file_state: FileState) -> Alert | None:
        rule = self.rule
        read = sum(r.counted() for r in state.reads.values())
        if rule is None or read < self.min_bytes:
            state.due = None
            return None
        outputs: list[LineageOutput] = []
        counted = exempt = 0  # bytes counted; bytes allowlisted processes wrote or sent
        unsettled = 0  # counted bytes of fresh writes-upper-bound outputs (a rename may still measure them)
        waiting = False
        for out in state.outputs.values():
            status = "deleted" if out.deleted else "counted"
            if out.kind == "file":
                known = file_state(out.where)
                if known == PENDING and now - out.since < PENDING_SECONDS:
                    waiting = True
                    continue
                if known == COPY:
                    status = "recognised-copy"
                elif known == MODEL and out.place not in LEAVING_PLACES:
                    status = "model-file"
            if status in ("counted", "deleted") and out.allowlisted:
                status, exempt = "allowlisted", exempt + out.bytes
            if status in ("counted", "deleted"):
                counted += out.bytes
                if out.measure == "writes-upper-bound" and now - out.since < BOUND_WAIT_SECONDS:
                    unsettled += out.bytes
            outputs.append(LineageOutput(out.kind, out.place, display_path(out.where), out.bytes, status,
                                         out.measure, out.owner))
        counted += state.more_bytes
        if waiting or (counted >= self.ratio * read > counted - unsettled):
            state.due = now + GRACE_SECONDS / 3
            return None
        state.due = None
        main = max(state.reads.values(), key=lambda r: r.counted())
        if counted < self.ratio * read:
            if counted + exempt >= self.ratio * read:  # allowlisted: no alert, but the bytes keep their taint
                self._taint_outputs(state, main, read, file_state)
            return None
        kinds = [o.place for o in outputs if o.state in ("counted", "deleted")]
        rated = [(severity_for(rule.severity_by_destination, rule.severity, kind), kind) for kind in kinds]
        (severity, why), worst = max(rated, key=lambda item: item[0][0])
        keys = frozenset(f"{o.where}|{o.state}" for o in outputs)
        if state.incident is not None:
            before, before_severity, before_bytes = state.reported
            if keys <= before and severity <= before_severity and counted < before_bytes * 1.25:
                return None  # nothing new worth an update
        state.reported = (keys, severity, counted)
        share = min(1.0, counted / read) if read else 0.0
        self._taint_outputs(state, main, read, file_state)
        return self._alert(state, rule, main, read, counted, share, outputs, severity, why, worst)

    def _taint_outputs(self, state: _Flow, main: _Read, read: int, file_state: FileState) -> None:
        """Outputs inherit the taint."""
        for out in state.outputs.values():
            if out.kind == "file" and not out.deleted and file_state(out.where) not in (COPY, MODEL):
                taint = Taint(state.id, main.model, main.path, min(1.0, out.bytes / read) if read else 0.0)
                self._remember_taint(out.where, taint)
                if out.device is not None and out.inode is not None:
                    self._remember_taint((out.device, out.inode), taint)

    def _alert(self, state: _Flow, rule: Rule, main: _Read, read: int, counted: int, share: float,
               outputs: list[LineageOutput], severity: int, why: str, worst: str) -> Alert:
        alert_id = new_id()
        first = state.incident
        if first is not None:
            state.updates += 1
        processes = [f"{p.name or '?'}[{p.pid}]" for p in state.processes.values()]
        reader = state.reader
        user = reader.user if reader is not None else None
        if user is None:
            user = next((p.user for p in state.processes.values() if p.user), None)
        target = max((o for o in outputs if o.place == worst and o.state in ("counted", "deleted")),
                     key=lambda o: o.bytes)  # the biggest output of the most dangerous kind
        if target.kind == "network":
            address, _, port = target.where.rpartition(":")
            destination = Destination("network", address, int(port) if port.isdigit() else None)
        else:
            destination = Destination(target.place, path=target.where)
        listed = ", ".join(f"{o.where} ({o.place}, {_bytes(o)}{'' if o.state == 'counted' else ', ' + o.state}"
                           f"{', process inferred' if o.owner == 'inferred' else ''})" for o in outputs[:8])
        more = f" and {len(outputs) - 8 + state.more_outputs} more" if len(outputs) > 8 or state.more_outputs else ""
        via = f" through {display_path(state.inherited_via or '?')}, a tainted output" if state.inherited else ""
        message = (f"{user or 'unknown user'}'s flow {' | '.join(processes[:6])} read {read} bytes of "
                   f"{display_path(main.path)} (model {main.model}){via} and wrote or sent {counted} bytes "
                   f"({share:.0%} of what it read): {listed}{more}")
        now_text = format_time(utc_now())
        if len(state.timeline) < 50:
            state.timeline.append(TimelineEntry(now_text, "model-lineage", alert_id, message[:300]))
        evidence = LineageEvidence(
            description=rule.description, techniques=rule.techniques, events=len(state.timeline),
            updates=state.updates, first_seen=state.timeline[0].time, timeline=tuple(state.timeline),
            incident=first or alert_id, source_model=main.model, source_path=display_path(main.path),
            bytes_read=read, model_bytes=main.size, output_bytes=counted, share=round(share, 4),
            ratio=self.ratio, outputs=tuple(outputs), processes=tuple(processes),
            flow_processes=state.process_count, user=user,
            inherited_from=display_path(state.inherited_via) if state.inherited_via else None)
        if first is None:
            state.incident = alert_id
        paths = tuple(dict.fromkeys([display_path(main.path),
                                     *(o.where for o in outputs if o.kind == "file")]))
        return Alert(rule_id=rule.id, title=f"{rule.title}: {main.model}", severity=severity,
                     message=f"{rule.title}: {message} [{why}]", paths=paths, model=main.model, process=reader,
                     destination=destination, evidence=evidence, id=alert_id)

    # ------------------------------------------------------------------ state

    def _flow(self, flow: int, now: float) -> _Flow:
        state = self._flows.get(flow)
        if state is None:
            state = self._flows[flow] = _Flow(flow, now, now)
        state.last = now
        self._flows.move_to_end(flow)
        return state

    def _member(self, state: _Flow, process: ProcessInfo) -> None:
        # Whether it is allowlisted is decided once, from the first look that names its program (the access
        # and file sensors' do; a process joined through a pipe is first named by pid alone).
        if process.pid not in state.allowlisted and (process.program or process.executable):
            state.allowlisted[process.pid] = self._exempt(process)
        key = (process.pid, None)
        if key not in state.processes:
            state.process_count += 1
            if len(state.processes) < PROCESSES_KEPT:
                state.processes[key] = process
        elif process.user and not state.processes[key].user:
            state.processes[key] = process

    @staticmethod
    def _add_output(state: _Flow, key: str, out: _Output) -> None:
        if len(state.outputs) >= OUTPUTS_KEPT:
            state.more_outputs += 1
            state.more_bytes += out.bytes
            return
        state.outputs[key] = out

    def _consider(self, state: _Flow, now: float) -> None:
        if state.due is None and state.reads:
            state.due = now + GRACE_SECONDS

    def _taint_early(self, state: _Flow, path: str, size: int, device: int | None, inode: int | None) -> None:
        """An output that alone holds `ratio` of what the flow read is tainted at once, before the decision
        (grace, examination): `mv blob.gpg /dev/shm/x && curl -T /dev/shm/x` reads the copy milliseconds
        after it is written. The decision confirms it (or a model-copy takes it over: protected itself)."""
        read = sum(r.counted() for r in state.reads.values())
        if device is None or inode is None or read < self.min_bytes or size < self.ratio * read:
            return
        main = max(state.reads.values(), key=lambda r: r.counted())
        taint = Taint(state.id, main.model, main.path, min(1.0, size / read))
        self._remember_taint(path, taint)
        self._remember_taint((device, inode), taint)

    def _remember_taint(self, key: tuple[int, int] | str, taint: Taint) -> None:
        self.taints_changed += 1
        self._taints[key] = taint
        self._taints.move_to_end(key)
        while len(self._taints) > TAINTS_KEPT:
            self._taints.popitem(last=False)

    def _prune(self, now: float) -> None:
        for flow in [k for k, f in self._flows.items() if now - f.last > FLOW_IDLE_SECONDS]:
            del self._flows[flow]
        while len(self._flows) > FLOWS_KEPT:
            self._flows.popitem(last=False)


def _bytes(out: LineageOutput) -> str:
    if out.measure == "relayed":
        return f"{out.bytes} bytes relayed by a local proxy the flow fed"
    if out.measure == "writes-upper-bound":
        return f"at most {out.bytes} bytes (its writer's write count)"
    if out.measure == "held-open":
        return f"{out.bytes} bytes (measured while deleted and held open)"
    return f"{out.bytes} bytes"
