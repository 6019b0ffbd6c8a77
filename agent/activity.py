"""Activity sensors: who opens, reads, sends and mounts; and the status every part of the agent reports.

The monitor picks each sensor's implementation for this platform and privilege (`sensors.platform.plan`),
gives each sensor an emitter of its own on the ordered queue (observations and health alike, so a sensor's
health stays in order with what it saw), keeps the access marks in step with the inventory, and writes a
status snapshot into the store every few seconds for `weightwarden status`. It translates nothing and
decides nothing: the dispatcher's handlers (agent/pipeline) turn observations into events.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from weightwarden.agent.access.decide import Decider, ModelRef
from weightwarden.agent.access.gate import Gate
from weightwarden.agent.config import Config
from weightwarden.agent.events import ProcessInfo, format_time, utc_now
from weightwarden.agent.evidence_files import WRITES_ONLY, EvidenceKind, evidence_directories
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.scope import Scope
from weightwarden.agent.sensors.access import AccessOverflow, AccessSensor
from weightwarden.agent.sensors.base import Sensor, SensorStatus, privilege
from weightwarden.agent.sensors.evidence_guard import EvidenceGuard
from weightwarden.agent.sensors.files import SensorHealth
from weightwarden.agent.sensors.holders import HolderSensor
from weightwarden.agent.sensors.mounts import MountSensor
from weightwarden.agent.sensors.network import NetworkSensor
from weightwarden.agent.sensors.platform import SensorPlan, plan
from weightwarden.agent.sensors.processes import PollingProcessSensor, ProcConnectorSensor

log = logging.getLogger(__name__)

STATUS_KEY = "status"
MARK_SYNC_SECONDS = 1.0  # at the latest; a change of the guarded files is marked at once
MARK_BURST_SECONDS = 0.02  # a discovery burst of many models is marked in a few passes, not one per model


class StatusReporter(Protocol):
    """Anything with a line in `weightwarden status`: every sensor, the file sensor, the store writer, the
    dispatcher."""

    name: str

    def status(self) -> SensorStatus: ...


class ActivityMonitor:
    def __init__(self, config: Config, inventory: Inventory, emitter: Callable[[str], Callable[..., None]], *,
                 reporters: Sequence[StatusReporter] = (),
                 write_state: Callable[[str, str], None] | None = None,
                 interested: Callable[[ProcessInfo | None], bool] | None = None,
                 scope: Callable[[], Scope] | None = None,
                 urgent: Callable[[], bool] | None = None,
                 tainted: Callable[[], Collection[int]] | None = None,
                 extra_marks: Callable[[], frozenset[str]] | None = None,
                 sections: Mapping[str, Callable[[], dict[str, Any]]] | None = None,
                 extra_gaps: Callable[[], dict[str, str]] | None = None,
                 decider: Decider | None = None) -> None:
        """`sections`: extra entries of the status snapshot by name (discovery's progress), each asked for
        its dict when the snapshot is written. `extra_gaps`: coverage lost while running (e.g. inotify limits
        reached), shown with the plan's. `urgent`: the network sensor polls quickly while it says so (a flow
        that read a model is running); `tainted`: the processes of such flows (agent/sensors/network.py);
        `extra_marks`: files the access sensor watches besides the protected models (outputs tainted by a
        model's bytes: agent/pipeline/flows.py). `decider`: the access policy's decisions, enforced on the
        opens the access sensor holds (agent/access/gate.py)."""
        self._extra_marks = extra_marks
        self.config = config
        self._scope = scope  # the agent's scope in effect, for the snapshot's "scope" entry
        self._extra_gaps = extra_gaps
        self.inventory = inventory
        self._reporters = reporters
        self._sections = dict(sections or {})
        self._write_state = write_state
        self._coverage = emitter("coverage")
        settings = config.sensors
        self.plan: SensorPlan = plan(settings, mode=config.mode)
        self.cache = ProcessCache()
        self.sensors: list[Sensor] = []
        self.processes: Sensor
        if self.plan.processes == "proc-connector":
            self.processes = ProcConnectorSensor(self.cache, emitter("processes"))
        else:
            self.processes = PollingProcessSensor(self.cache, emitter("processes"),
                                                  self.plan.gaps.get("processes", ""))
        self.sensors.append(self.processes)
        self.access: AccessSensor | HolderSensor | None = None
        self.gate: Gate | None = None
        access = emitter("access")
        if self.plan.access == "fanotify":
            self.gate = Gate(decider, self._model_ref, self._marked) if decider is not None else None
            self.access = AccessSensor(self.cache, access, access, lambda: access(AccessOverflow()),
                                       hold_opens=settings.hold_opens, gate=self.gate)
        elif self.plan.access == "holders":
            self.access = HolderSensor(self.cache, access, access, self.plan.gaps.get("access", ""))
        if self.access is not None:
            self.sensors.append(self.access)
        self.network: NetworkSensor | None = None
        if self.plan.network != "off":
            network = emitter("network")
            self.network = NetworkSensor(self.cache, network, network, interval=settings.network_poll_seconds,
                                         use_sock_diag=self.plan.network == "sock_diag",
                                         reason=self.plan.gaps.get("network", ""),
                                         interested=interested,  # live progress of these trees' uploads
                                         urgent=urgent, tainted=tainted)
            self.sensors.append(self.network)
        self.evidence_guard: EvidenceGuard | None = None
        if config.mode == "system" and self.plan.access == "fanotify":  # root: the evidence is root's alone
            guard = emitter("evidence")
            self.evidence_guard = EvidenceGuard(self.cache, guard, guard, directories=evidence_directories(config),
                                                names=EvidenceKind(config), writes_only=WRITES_ONLY)
            self.sensors.append(self.evidence_guard)
        self.mounts: MountSensor | None = None
        if self.plan.mounts:
            mounts = emitter("mounts")
            self.mounts = MountSensor(mounts, mounts)
            self.sensors.append(self.mounts)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._marked_generation: frozenset[str] = frozenset()

    def _model_ref(self, path: str, device: int, inode: int) -> ModelRef:
        model = self.inventory.get(path) or self.inventory.at_inode(device, inode)  # renamed since marked
        return ModelRef(path, model.model if model is not None else None)

    def _marked(self, device: int, inode: int) -> bool:
        return isinstance(self.access, AccessSensor) and self.access.is_marked(device, inode)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.plan.gaps:
            self._coverage(SensorHealth("coverage", "degraded", "reduced coverage: " + "; ".join(
                f"{name}: {why}" for name, why in sorted(self.plan.gaps.items()))))
        for sensor in self.sensors:
            try:
                sensor.start()
            except Exception as error:  # one sensor failing never stops the others
                log.exception("sensor %s failed to start", sensor.name)
                self._coverage(SensorHealth(sensor.name, "failed", f"could not start: {error}"))
        self.sync_marks()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ww-activity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.inventory.protected_changed.set()  # wakes the marking loop
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for sensor in reversed(self.sensors):
            try:
                sensor.stop()
            except Exception:
                log.exception("sensor %s failed to stop", sensor.name)
        self.write_status(stopped=True)

    def _run(self) -> None:
        last_status = 0.0
        changed = self.inventory.protected_changed
        while not self._stop.is_set():
            changed.wait(MARK_SYNC_SECONDS)
            if self._stop.wait(MARK_BURST_SECONDS):
                break
            changed.clear()
            try:
                self.sync_marks()
                if time.monotonic() - last_status >= self.config.sensors.status_seconds:
                    self.write_status()
                    last_status = time.monotonic()
            except Exception:
                log.exception("activity upkeep failed")

    def sync_marks(self) -> None:
        """Mark exactly the inventory's protected files (new models marked, deleted and public ones not)."""
        if self.access is None:
            return
        paths = self.inventory.protected_paths()
        if self._extra_marks is not None:
            paths = paths | self._extra_marks()
        if paths != self._marked_generation:
            self.access.protect(paths)
            self._marked_generation = paths

    # ------------------------------------------------------------------ status

    def statuses(self) -> list[SensorStatus]:
        found = []
        for reporter in [*self._reporters, *self.sensors]:
            try:
                found.append(reporter.status())
            except Exception:
                log.exception("status of %s failed", reporter.name)
        return found

    def gaps(self) -> dict[str, str]:
        gaps = dict(self.plan.gaps)
        if self._extra_gaps is not None:
            try:
                gaps.update(self._extra_gaps())
            except Exception:
                log.exception("coverage gaps failed")
        return gaps

    def snapshot(self, *, stopped: bool = False) -> dict[str, Any]:
        sections: dict[str, Any] = {}
        for name, section in self._sections.items():
            try:
                sections[name] = section()
            except Exception:
                log.exception("status section %s failed", name)
        gaps = self.gaps()
        return {
            **sections,
            "time": format_time(utc_now()),
            "pid": os.getpid(),
            "mode": self.config.mode,
            "privilege": privilege(),
            "coverage": "reduced" if gaps else "full",
            "gaps": gaps,
            "running": not stopped,
            "uptime_seconds": round(time.monotonic() - self._started, 1),
            "interval_seconds": self.config.sensors.status_seconds,
            "protected_files": len(self.inventory.protected_paths()),
            "known_model_files": len(self.inventory),
            "process_cache": len(self.cache),
            "sensors": [s.to_dict() for s in self.statuses()],
            # users covered and not (with why), every root: `weightwarden status`, the app's Overview
            "scope": self._scope().to_dict() if self._scope is not None else None,
        }

    def write_status(self, *, stopped: bool = False) -> None:
        if self._write_state is not None:
            self._write_state(STATUS_KEY, json.dumps(self.snapshot(stopped=stopped), sort_keys=True))
