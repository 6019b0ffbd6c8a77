"""The agent: the composition root. It builds the parts, wires them to one ordered queue, runs the
dispatcher, and shuts everything down in order.

    sensors, examination pool, evidence, control socket --emit--> ObservationQueue (agent/pipeline)
        --> Dispatcher (this thread): handler per observation type -> Event/Alert
            --> RecordWriter (store, batched)      Event --> Detector (agent/detect) --> Alert --> store

Nothing here decides anything: files go through the file pipeline (agent/pipeline/files.py), the inventory
through InventoryUpkeep, detection is agent/detect's, activity sensors are agent/activity.py's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

from weightwarden.agent import __version__, control, systemd_notify
from weightwarden.agent.access.decide import Decider
from weightwarden.agent.access.grants import BreakGlass, GrantBook, PendingRecords, prepare_requests_dir
from weightwarden.agent.access.policy import AccessPolicies
from weightwarden.agent.activity import ActivityMonitor, StatusReporter
from weightwarden.agent.audit.record import summary_event
from weightwarden.agent.canary import Canaries
from weightwarden.agent.config import Config
from weightwarden.agent.detect.policy import Detector, load_policy_rules, settings_from_config
from weightwarden.agent.discovery import Discovery, DiscoveryDone, DiscoverySettings, default_roots
from weightwarden.agent.events import Action, Alert, Category, Event, ModelFile, ProcessInfo, Record, display_path
from weightwarden.agent.evidence import Evidence
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.models.protection import ProtectPolicy
from weightwarden.agent.pipeline.activity_events import (
    access_event,
    connection_event,
    evidence_written,
    fail_open_event,
    health_event,
    scope_change_event,
    verdict_event,
)
from weightwarden.agent.pipeline.discovery_upkeep import discovery_finished
from weightwarden.agent.pipeline.dispatcher import Dispatcher
from weightwarden.agent.pipeline.files import (
    BurstQuiet,
    Examined,
    FilePipeline,
    Identified,
    RescanRequest,
    ScanDone,
    ScanFound,
)
from weightwarden.agent.pipeline.flows import FlowTracker, file_state
from weightwarden.agent.pipeline.inventory_upkeep import InventoryUpkeep
from weightwarden.agent.pipeline.mount_coverage import LEAVING_KINDS, MountCoverage, file_sensor_roots
from weightwarden.agent.pipeline.ordered_queue import ObservationQueue
from weightwarden.agent.pipeline.serving_events import served_event, stopped_event, traffic_event
from weightwarden.agent.scanner import Scanner
from weightwarden.agent.scope import Scope, ScopeChanged, ScopeWatcher
from weightwarden.agent.seal.unseal_service import unseal_service
from weightwarden.agent.sensors import fs_writes
from weightwarden.agent.sensors.access import AccessFailOpen, AccessObservation, AccessOverflow
from weightwarden.agent.sensors.evidence_guard import EvidenceTouch
from weightwarden.agent.sensors.files import FileObservation, FileSensor, SensorHealth, WatchStarted
from weightwarden.agent.sensors.fs_writes import FsWriteSensor, FsWritesOverflow, MarkFallback
from weightwarden.agent.sensors.mounts import MountObservation, read_mounts
from weightwarden.agent.sensors.network import ConnectionObservation, sock_diag_unavailable
from weightwarden.agent.serving.held import loaded_models
from weightwarden.agent.serving.observations import PeerTraffic, ServingStarted, ServingStopped
from weightwarden.agent.serving.sensor import ServingSensor
from weightwarden.agent.similarity.imported import ImportedPrints
from weightwarden.agent.store import RecordWriter, Store
from weightwarden.agent.store.tensor_store import shared_blocks
from weightwarden.agent.walk import ScanIssue

log = logging.getLogger(__name__)

CACHE_SAVE_SECONDS = 30.0
POLICY_CHECK_SECONDS = 2.0  # access policy files edited are in force within this

USER_MODE_GAPS = (
    "running without root: no fanotify access sensor (reads by other processes are not seen), "
    "no process attribution for file changes; file changes are watched with inotify (watchdog off Linux)"
)


class Agent:
    def __init__(self, config: Config, *, executor: Executor | None = None,
                 discovery_roots: Callable[[], list[str]] | None = None) -> None:
        """`executor` examines settled files and scans trees (default: a pool of [scan] workers threads);
        `discovery_roots` gives discovery its roots at each pass (default: discovery.roots.default_roots)."""
        self.config = config
        self.store = Store(config.database_path)
        # Every recorded Event passes through the detection rules (agent/detect, docs/rules.md).
        self.detector = Detector(load_policy_rules(config.detect.rule_paths), settings_from_config(config.detect),
                                 Canaries(config.data_dir))
        self.writer = RecordWriter(self.store, batch_size=config.store.batch_size,
                                   flush_seconds=config.store.flush_seconds,
                                   on_written=lambda records: self.evidence.written(records))
        self.observations = ObservationQueue()
        self.dispatcher = Dispatcher(self.observations, self.writer.submit, self.detector.process)
        # Signed chain checkpoints, heartbeats and the SIEM forwarders (agent/evidence.py).
        self.evidence = Evidence(config, self.store, self.writer, self.observations.emitter("evidence"),
                                 self._heartbeat_status)
        known_files = self.store.model_files()
        # The cache's tensor corners share the inventory's bytes: one copy of each 2 KiB corner in memory.
        self.cache = FingerprintCache(self.store.load_file_cache(shared_blocks(known_files)))
        self.scanner = Scanner(
            Identifier(window_bytes=config.scan.window_bytes, tail_bytes=config.scan.tail_bytes),
            self.cache, hash_block_bytes=config.scan.hash_block_bytes,
            hash_sparse_files=config.scan.hash_sparse_files, workers=config.scan.workers)
        self.inventory = Inventory(known_files)
        # Public prints an administrator imported (`weightwarden prints import`): never evidence of a copy.
        self.imported_prints = ImportedPrints(config.data_dir)
        self._imported_sources: dict[str, list[str]] = {}
        # Records the `weightwarden access` commands leave for the agent to store (agent/access/grants.py).
        self.access_records = PendingRecords(config.data_dir)
        # The access policy (agent/access): decided on every open the access sensor holds, reloaded on change.
        self.access_policies = AccessPolicies()
        self.decider = Decider(self.access_policies, GrantBook(config.data_dir), BreakGlass(config.data_dir))
        self._policies_checked = 0.0
        self._load_imported_prints(force=True)
        # Whose places are protected and watched: every person's in system mode (agent/scope), looked at
        # again every few seconds; `self.scope` is the one in effect, replaced on the dispatcher's thread.
        self.scope_watcher = ScopeWatcher(config, self.observations.emitter("scope"))
        self.scope: Scope = self.scope_watcher.initial
        # Which inventoried models are protected, and why: one decision for every finder (agent/models/protection.py).
        self.policy = ProtectPolicy(config.inventory.protect, [*config.inventory.roots, *config.inventory.extra_roots],
                                    config.inventory.private_hub_orgs)
        self.upkeep = InventoryUpkeep(self.inventory, self.writer, self.detector, self.policy)
        self.files = FilePipeline(config, self.scanner, self.upkeep,
                                  self.observations.emitter("examine"), self.dispatcher.isolated, self._save_cache,
                                  executor=executor, scope=self.scope,
                                  who=lambda pid: self.activity.cache.process_info(pid))
        # Lineage: which processes pass data to each other (flows), what each flow read from protected models
        # and wrote or sent (agent/pipeline/flows.py -> agent/detect/lineage.py, rule model-lineage).
        self.flows = FlowTracker(
            self.detector.engine.lineage, model_of=self._protected_model,
            file_state=file_state(self.files.examining, lambda path: self.inventory.get(path) is not None),
            ignored=self.files.ignored)
        # Files: in system mode fanotify filesystem marks see every write with its writer (fs-writes); the
        # inotify sensor then takes only the mounts they cannot cover. Otherwise inotify watches the scope's
        # watch roots (the whole home in user mode). Mounts that come and go are given to one or the other.
        self.writes: FsWriteSensor | None = None
        if config.mode == "system" and config.sensors.file_marks and fs_writes.unavailable() is None:
            writes = self.observations.emitter("fs-writes")
            self.writes = FsWriteSensor(writes, writes, who=lambda pid: self.activity.cache.process_info(pid),
                                        wanted=self.files.worth_examining,
                                        wanted_gone=self.files.worth_a_deletion,
                                        wanted_writer=lambda pid: pid in self.flows.tainted_pids)
        files = self.observations.emitter("files")
        self.sensor = FileSensor(file_sensor_roots(config, self.scope.watch_roots, marks=self.writes is not None),
                                 files, files)
        self.mount_coverage = MountCoverage(self.sensor, self.writes, self.files.request_rescan,
                                            mounts=read_mounts() if config.sensors.mounts else {},
                                            watched_roots=self.sensor.roots)
        # `weightwarden unseal`: decided with the access policy, done and recorded by the agent (docs/sealing.md).
        self.unseal = unseal_service(config.data_dir, self.observations.emitter("seal"),
                                     who=lambda pid: self.activity.cache.process_info(pid),
                                     model_name=self._model_name, decider=self.decider)
        # The app's actions (justify, acknowledge, resolve, scan now) arrive here: agent/control.py.
        app = self.observations.emitter("control")
        self.control = control.for_agent(
            config, self.store, on_scan_now=lambda: app(RescanRequest(tuple(self.scope.protected_roots), "scan now")),
            on_review=lambda review: app(_review_event(review)),
            on_audit=lambda summary: app(summary_event(summary)),  # `weightwarden audit --record`
            on_access=app,  # requests filed for a caller, recorded at once (agent/control_access.py)
            on_unseal=self.unseal.answer,
            apply_destinations=self.evidence.forwarders.apply)  # live, from the app
        # Models anywhere under the homes and configured trees, at idle priority (agent/discovery); only when
        # the policy can protect models outside the roots. `discovery_roots` is where per-user homes plug in.
        self.discovery: Discovery | None = None
        if self.policy.discovers:
            self.discovery = Discovery(
                self.scanner, self.observations.emitter("discovery"),
                discovery_roots or (lambda: default_roots(config, [user.home for user in self.scope.users])),
                DiscoverySettings.from_config(config),
                load_state=self.store.state, save_state=self.store.set_state, ignored=self.files.ignored,
                ready=self.files.initial_scan_done, save_cache=self._save_cache)
        reporters: list[StatusReporter] = [*self._file_sensors(), self.mount_coverage, self.writer, self.dispatcher,
                                           self.scope_watcher]
        sections: dict[str, Callable[[], dict[str, Any]]] = {}
        # Model servers: listeners with a protected model loaded, their exposure and each peer's volume
        # (agent/serving, docs/serving.md); needs sock_diag of every namespace (root, Linux).
        self.serving: ServingSensor | None = None
        if config.mode == "system" and sock_diag_unavailable() is None:
            serving = self.observations.emitter("serving")
            self.serving = ServingSensor(serving, serving,
                                         loaded=lambda pid: loaded_models(pid, self._protected_at),
                                         who=lambda pid: self.activity.cache.process_info(pid))
            reporters.append(self.serving)
            sections["serving"] = self.serving.snapshot
        if self.discovery is not None:
            reporters.append(self.discovery)
            sections["discovery"] = self.discovery.snapshot
        # Who touches a model: access, process, network and mount sensors (agent/activity.py).
        self.activity = ActivityMonitor(config, self.inventory, self.observations.emitter,
                                        reporters=reporters, sections=sections, extra_gaps=self._file_gaps,
                                        write_state=self.store.set_state, interested=self._sends_matter,
                                        scope=lambda: self.scope, urgent=self.flows.urgent,
                                        tainted=lambda: self.flows.tainted_pids,
                                        extra_marks=lambda: self.flows.tainted_paths, decider=self.decider)
        if self.activity.network is not None:
            self.flows.on_joined = self.activity.network.wake
        self.flows.on_tainted = self.inventory.protected_changed.set  # the access sensor marks them at once
        self._own = self.observations.emitter("agent")
        self._register_handlers()

    def _sends_matter(self, process: ProcessInfo | None) -> bool:
        """Whether a connection's growing byte count is reported live: its process tree read a protected
        model, or it belongs to a flow that did (a local proxy the flow feeds, a forked uploader)."""
        return self.detector.read_models(process) or (process is not None
                                                       and process.pid in self.flows.tainted_pids)

    def _register_handlers(self) -> None:
        on, files = self.dispatcher.on, self.files
        flows = self.flows
        on(FileObservation, self._file)
        on(Identified, lambda found, at: flows.copy_alerts(files.identified(found, at)))
        on(Examined, lambda found, at: flows.copy_alerts(files.examined(found, at)))
        on(ScanFound, lambda found, at: flows.copy_alerts(files.found(found, at)))
        on(ScanIssue, files.issue)
        on(ScanDone, files.scan_done)
        on(DiscoveryDone, lambda done, at: discovery_finished(self.upkeep, done, at))
        on(RescanRequest, files.rescan)
        on(BurstQuiet, files.burst_quiet)
        on(AccessObservation, self._access)
        on(AccessFailOpen, lambda obs, at: [fail_open_event(obs, at)])
        on(AccessOverflow, lambda obs, at: files.rescan(
            RescanRequest(tuple(self.scope.protected_roots), "access events lost"), at))
        on(ScopeChanged, self._scope_changed)
        on(ConnectionObservation, self._connection)
        on(EvidenceTouch, lambda touch, at: [evidence_written(touch, at)])
        mounts = self.mount_coverage
        on(MountObservation, mounts.mount)
        on(MarkFallback, mounts.fallback)
        on(WatchStarted, mounts.watch_started)
        on(FsWritesOverflow, self._writes_lost)
        on(SensorHealth, lambda health, at: [health_event(health, at)])
        on(ServingStarted, lambda started, at: [served_event(started, at)])
        on(ServingStopped, lambda stopped, at: [stopped_event(stopped, at)])
        on(PeerTraffic, lambda traffic, at: [traffic_event(traffic, at)])
        on(Event, lambda event, at: [event])  # made whole elsewhere: evidence, reviews, forwarders
        self.dispatcher.every_turn(files.tick)
        self.dispatcher.every_turn(self._lineage_tick)

    # ------------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; then stop sensors, finish in-flight work and flush everything."""
        coverage = "full" if self.config.mode == "system" and os.geteuid() == 0 else "reduced"
        self.dispatcher.record(Event(
            Action.AGENT_STARTED, Category.HOST,
            f"Weightwarden agent {__version__} started in {self.config.mode} mode ({coverage} coverage)",
            details={"mode": self.config.mode, "coverage": coverage, "version": __version__,
                     "host": socket.gethostname(), "pid": os.getpid(),
                     "protected_roots": self.scope.protected_roots, "watch_roots": self.scope.watch_roots,
                     "users_covered": [display_path(user.name) for user in self.scope.users],
                     "known_model_files": len(self.inventory)}))
        health = self._own
        if coverage == "reduced":
            health(SensorHealth("access", "degraded", f"reduced coverage: {USER_MODE_GAPS}"))
        self.evidence.start()
        self._start_file_sensors()
        self.activity.start()
        try:
            self.control.start()
        except OSError as error:  # the agent still protects; only the app's actions are unavailable
            health(SensorHealth("control", "failed", f"control socket unavailable: {error}"))
        self.files.start()
        if self.serving is not None:
            self.serving.start()
        self.scope_watcher.start()
        if self.discovery is not None:
            self.discovery.start()
        # Under systemd (Type=notify): ready once the sensors run; the dispatcher's loop pings the watchdog.
        systemd_notify.ready(f"{self.config.mode} mode, {coverage} coverage")
        watchdog = systemd_notify.WatchdogPinger()
        last_cache_save = time.monotonic()

        if self.config.mode == "system" and os.geteuid() == 0:  # where users drop access requests
            self.dispatcher.isolated(prepare_requests_dir, self.config.data_dir)

        def on_turn(now: float) -> None:
            nonlocal last_cache_save
            watchdog.tick(now)
            # Access grants, revokes, expiries, break-glass and requests made by `weightwarden access`
            for record in self.dispatcher.isolated(self.access_records.poll, now) or ():
                self.dispatcher.record(record)
            if now - self._policies_checked >= POLICY_CHECK_SECONDS:
                self._policies_checked = now
                self.dispatcher.isolated(self._refresh_policies)
            self._load_imported_prints()
            if now - last_cache_save > CACHE_SAVE_SECONDS:
                self._save_cache()
                last_cache_save = now

        self.dispatcher.run(stop, on_turn)
        self._shutdown()

    def _refresh_policies(self) -> None:
        """Take up edited access policy files; a refused file (its previous policies stay) is a health event."""
        loaded = self.access_policies.refresh()
        if loaded is None:
            return
        if loaded.problems:
            shown = "; ".join(str(problem) for problem in loaded.problems[:5])
            more = f" (and {len(loaded.problems) - 5} more)" if len(loaded.problems) > 5 else ""
            self._own(SensorHealth("access-policy", "degraded",
                                   f"access policy files refused, previous policies kept: {shown}{more}"))
        else:
            log.info("access policies reloaded: %d policies", len(loaded.policies))

    def _load_imported_prints(self, *, force: bool = False) -> None:
        fresh, gone = self.imported_prints.changes(force=force)
        for path in [*gone, *fresh]:
            for source in self._imported_sources.pop(path, []):
                self.inventory.remove_public_prints(source)
        for path, models in fresh.items():
            sources = self._imported_sources[path] = []
            for number, model in enumerate(models):
                sources.append(f"{path}#{number}")
                self.inventory.add_public_prints(sources[-1], model.model, model.tensors)

    def _shutdown(self) -> None:
        systemd_notify.stopping("flushing records")
        self.control.stop()
        self.unseal.stop()  # its records still reach the store: the dispatcher drains below
        self.scope_watcher.stop()
        if self.discovery is not None:
            self.discovery.stop()  # its position is saved: the next start continues the pass
        self.activity.stop()
        if self.serving is not None:
            self.serving.stop()
        if self.writes is not None:
            self.writes.stop()
        self.sensor.stop()
        self.files.finish(self.dispatcher.drain)  # what is queued, settling or being examined
        self.evidence.stop_periodic()
        self.dispatcher.drain()  # the last heartbeat or checkpoint, so agent-stopped comes after them
        self.dispatcher.record(Event(
            Action.AGENT_STOPPED, Category.HOST, "Weightwarden agent stopped",
            details={"known_model_files": len(self.inventory), "handler_errors": self.dispatcher.errors,
                     **self.evidence.final_signature()}))  # signs everything before it
        self.evidence.stop()  # lets the forwarders deliver agent-stopped
        self.dispatcher.drain()  # what the forwarders reported while delivering it is kept too
        self.flows.close()  # descriptors held on deleted outputs
        self.writer.close()
        self._save_cache()
        self.store.close()

    def _scope_changed(self, change: ScopeChanged, at: datetime) -> list[Record]:
        """Accounts or folders appeared or went: scan what is newly protected, and say what changed.

        Roots no longer in scope are simply not scanned again; their inventoried models stay until a rescan
        of a root that still holds them finds them gone (or the file sensor sees them deleted). New copy
        places are watched at once (filesystem marks already see every write).
        """
        before, self.scope = self.scope, change.scope
        self.files.use_scope(change.scope)
        if self.writes is None:  # without filesystem marks, inotify watches each person's copy places
            for root in change.scope.watch_roots:
                if root not in before.watch_roots:
                    self.sensor.add_root(root)
            for root in before.watch_roots:
                if root not in change.scope.watch_roots:
                    self.sensor.remove_root(root)
        self.files.request_rescan([r for r in change.scope.protected_roots if r not in before.protected_roots],
                                  "scope changed")
        event = scope_change_event(before, change.scope, at)
        return [] if event is None else [event]

    def _file_sensors(self) -> list[FileSensor | FsWriteSensor]:
        return [self.sensor] if self.writes is None else [self.writes, self.sensor]

    def _start_file_sensors(self) -> None:
        self.sensor.start()  # first: the mounts fs-writes cannot mark are handed to it
        if self.writes is None:
            return
        try:
            self.writes.start()
        except OSError as error:  # no file-id group after all: inotify takes the watch roots
            self.writes = None
            self.mount_coverage.use_inotify_for_mounts()
            for root in self.scope.watch_roots:
                self.sensor.add_root(root)
            self._own(SensorHealth("fs-writes", "failed", f"filesystem marks unavailable ({error}); inotify "
                                                          "watches the watch roots instead"))

    def _file_gaps(self) -> dict[str, str]:
        """Coverage lost while running: roots polled because an inotify limit was reached."""
        polled = list(self.sensor.polled_roots)
        if not polled:
            return {}
        return {"files": f"inotify limits reached: {len(polled)} roots polled every few seconds "
                         f"({', '.join(polled[:5])}{' ...' if len(polled) > 5 else ''})"}

    def _writes_lost(self, lost: FsWritesOverflow, at: datetime) -> list[Record]:
        """The fs-writes queue overflowed (its sensor reported it): look again at what the marked filesystems
        protect: the protected and watch roots, and the sticks, shares and images among its mounts."""
        leaving = [p for p in lost.mount_points if self.mount_coverage.kinds.get(p) in LEAVING_KINDS]
        roots = dict.fromkeys([*self.scope.protected_roots, *self.scope.watch_roots, *leaving])
        return self.files.rescan(RescanRequest(tuple(roots), "file writes lost"), at)

    def _file(self, obs: FileObservation, at: datetime) -> list[Record]:
        """A file event: an output of a tainted flow (any size) for lineage, then the file pipeline."""
        self.dispatcher.isolated(self.flows.file, obs)
        return self.files.observe(obs, at)

    def _connection(self, obs: ConnectionObservation, at: datetime) -> list[Record]:
        self.dispatcher.isolated(self.flows.connection, obs)
        return [connection_event(obs, at)]

    def _lineage_tick(self, now: float) -> float | None:
        """The lineage decisions that are due (alerts recorded in order); seconds until the next one."""
        marked = self.flows.tainted_paths
        alerts: list[Alert] = self.flows.tick(now)
        for alert in alerts:
            self.dispatcher.record(alert)
        if self.flows.tainted_paths != marked:
            self.inventory.protected_changed.set()  # the access sensor marks the tainted outputs too
        return self.flows.due_in(now)

    def _model_name(self, path: str, device: int, inode: int) -> str | None:
        """The inventory's name for the file with this identity (under whatever name it has now)."""
        model = self.inventory.at_inode(device, inode) or self.inventory.get(path)
        return model.model if model is not None else None

    def _protected_at(self, device: int, inode: int) -> ModelFile | None:
        model = self.inventory.at_inode(device, inode)
        return model if model is not None and model.protected else None

    def _protected_model(self, path: str, device: int, inode: int) -> ModelFile | None:
        model = self.inventory.get(path) or self.inventory.at_inode(device, inode)
        return model if model is not None and model.protected else None

    def _access(self, obs: AccessObservation, at: datetime) -> list[Record]:
        """An access to a protected file as an event; a read also names who may copy it next. An access to
        a tainted output (marked for lineage only) is lineage's alone."""
        verdict = verdict_event(obs, self.inventory, at)
        if obs.kind in ("denied", "decided"):  # no open came of it (EPERM), or one already counted
            return [verdict] if verdict is not None else []
        model = self._protected_model(obs.path, obs.device, obs.inode)
        self.dispatcher.isolated(self.flows.access, obs, model)
        if model is None and self.inventory.get(obs.path) is None and \
                self.inventory.at_inode(obs.device, obs.inode) is None:
            return [verdict] if verdict is not None else []
        event = access_event(obs, self.inventory, at)
        model = self.inventory.get(obs.path) or self.inventory.at_inode(obs.device, obs.inode)
        if model is not None and event.process is not None and event.action in (Action.MODEL_OPENED,
                                                                                Action.MODEL_READ):
            self.upkeep.note_reader(model.path, event.process)
        return [event, verdict] if verdict is not None else [event]

    def record(self, record: Record) -> None:
        """Hand a record made whole elsewhere to the ordered pipeline: stored, and an Event detected on."""
        self._own(record)

    def _heartbeat_status(self) -> dict[str, Any]:
        """What a heartbeat carries besides the backlog: coverage and sensor health."""
        snapshot = self.activity.snapshot()
        return {"mode": snapshot["mode"], "coverage": snapshot["coverage"], "gaps": snapshot["gaps"],
                "sensors": snapshot["sensors"], "handler_errors": self.dispatcher.errors,
                "writer_failures": self.writer.failures, "version": __version__}

    def _save_cache(self) -> None:
        self.store.save_file_cache(self.cache.drain_unsaved())


def _review_event(review: dict[str, Any]) -> Record:
    """A review made through the control socket is also an event, so it is chained and forwarded."""
    return Event(Action.ALERT_REVIEWED, Category.INTRUSION_DETECTION,
                 f"alert {review['alert_id']}: {review['action']} by {review['user']}", details=review)

