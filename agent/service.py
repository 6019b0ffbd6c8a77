"""The agent: wires sensors -> examination -> detection -> store, and keeps the inventory current.

Threads: watchdog's observer feeds `_observe` (cheap: it only notes paths); the main loop hands settled
paths to a small pool that identifies and fingerprints them; the store writer commits in batches. Every
handler is wrapped so one failure is logged and counted, never fatal (STYLE.md, habit 3).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from weightwarden.agent import __version__, control, systemd_notify
from weightwarden.agent.activity import ActivityMonitor, file_sensor_status, store_status
from weightwarden.agent.canary import CanaryPaths
from weightwarden.agent.config import Config
from weightwarden.agent.detect import posture
from weightwarden.agent.detect.copy import detect_copy, detect_derived_copy
from weightwarden.agent.detect.policy import Detector, load_policy_rules, settings_from_config
from weightwarden.agent.events import (
    Action,
    Alert,
    Category,
    Event,
    FileInfo,
    ModelFile,
    Record,
    display_path,
    utc_now,
)
from weightwarden.agent.evidence import Evidence
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.inventory import Inventory, TensorMatch
from weightwarden.agent.scanner import Scanner, ScanStats
from weightwarden.agent.sensors.files import FileObservation, FileSensor, SensorHealth
from weightwarden.agent.sensors.mounts import path_kind
from weightwarden.agent.settle import Settler
from weightwarden.agent.store import RecordWriter, Store
from weightwarden.agent.walk import ScanIssue

log = logging.getLogger(__name__)

IDLE_WAKE = 0.5  # seconds; bounds how long SIGTERM waits for the main loop to notice

USER_MODE_GAPS = (
    "running without root: no fanotify access sensor (reads by other processes are not seen), "
    "no process attribution for file changes; file changes are watched with watchdog"
)


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        # Every recorded Event passes through the detection rules (agent/detect, docs/rules.md).
        self.detector = Detector(load_policy_rules(config.detect.rule_paths), settings_from_config(config.detect),
                                 CanaryPaths(config.data_dir))
        self.store = Store(config.database_path)
        self.writer = RecordWriter(self.store, batch_size=config.store.batch_size,
                                   flush_seconds=config.store.flush_seconds,
                                   on_written=lambda records: self.evidence.written(records))
        # Signed chain checkpoints, heartbeats and the SIEM forwarders (agent/evidence.py).
        self.evidence = Evidence(config, self.store, self.writer, self.record, self._heartbeat_status)
        self.cache = FingerprintCache(self.store.load_file_cache())
        self.scanner = Scanner(
            Identifier(window_bytes=config.scan.window_bytes, tail_bytes=config.scan.tail_bytes),
            self.cache, hash_block_bytes=config.scan.hash_block_bytes,
            hash_sparse_files=config.scan.hash_sparse_files, workers=config.scan.workers)
        self.inventory = Inventory(self.store.model_files())
        self.settler = Settler(config.watch.settle_seconds)
        self.sensor = FileSensor(config.watch_roots, self._safe(self._observe), self._safe(self._health))
        self._pool = ThreadPoolExecutor(config.scan.workers, thread_name_prefix="ww-examine")
        self._alerted_while_changing: dict[str, Alert] = {}  # copy alerts raised by a look the file outran
        self._inventory_lock = threading.Lock()  # one examination at a time updates inventory + store
        self._stop = threading.Event()
        self._rescan_roots: set[str] = set()
        self._wake = self.settler.wake  # set by the settler, rescan requests and nothing else: no polling
        self._rescan_lock = threading.Lock()
        self.errors = 0
        data_dir = os.path.realpath(config.data_dir)
        self._ignored_prefix = data_dir.rstrip("/") + "/"
        self._temp_roots = _temporary_roots()
        # The app's actions (justify, acknowledge, resolve, scan now) arrive here: agent/control.py.
        self.control = control.for_agent(config, self.store, on_scan_now=self._scan_now, on_review=self._reviewed,
                                         apply_destinations=self.evidence.forwarders.apply)  # live, from the app
        # Who touches a model: access, process, network and mount sensors (agent/activity.py).
        self.activity = ActivityMonitor(config, self.inventory, self.record, self._safe(self._health),
                                        self._queue_rescan, write_state=self.store.set_state,
                                        extra_status=lambda: [file_sensor_status(self.sensor),
                                                              store_status(self.writer)],
                                        interested=self.detector.read_models)

    # ------------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; then stop sensors, finish in-flight work and flush everything."""
        self._stop = stop
        coverage = "full" if self.config.mode == "system" and os.geteuid() == 0 else "reduced"
        self.record(Event(
            Action.AGENT_STARTED, Category.HOST,
            f"Weightwarden agent {__version__} started in {self.config.mode} mode ({coverage} coverage)",
            details={"mode": self.config.mode, "coverage": coverage, "version": __version__,
                     "host": socket.gethostname(), "pid": os.getpid(),
                     "protected_roots": self.config.protected_roots, "watch_roots": self.config.watch_roots,
                     "known_model_files": len(self.inventory)}))
        if coverage == "reduced":
            self._health(SensorHealth("access", "degraded", f"reduced coverage: {USER_MODE_GAPS}"))
        self.evidence.start()
        self.sensor.start()
        self.activity.start()
        try:
            self.control.start()
        except OSError as error:  # the agent still protects; only the app's actions are unavailable
            self._health(SensorHealth("control", "failed", f"control socket unavailable: {error}"))
        scan_thread = None
        if self.config.inventory.scan_on_start:
            scan_thread = threading.Thread(target=self._safe(self._initial_scan), name="ww-initial-scan",
                                           daemon=True)
            scan_thread.start()
        pending: list[Future[None]] = []
        last_cache_save = time.monotonic()
        # Under systemd (Type=notify): ready once the sensors run; the main loop pings the watchdog.
        systemd_notify.ready(f"{self.config.mode} mode, {coverage} coverage")
        watchdog = systemd_notify.WatchdogPinger()
        while not stop.is_set():
            # Sleep until a path is due, a rescan is asked for, or at most IDLE_WAKE: an idle agent wakes
            # twice a second (to notice `stop` and ping the watchdog), not twenty times.
            wait = self.settler.seconds_to_next(time.monotonic())
            self._wake.wait(IDLE_WAKE if wait is None else min(wait, IDLE_WAKE))
            self._wake.clear()
            watchdog.tick(time.monotonic())
            for path in self.settler.due(time.monotonic()):
                pending.append(self._pool.submit(self._safe(self._examine_path), path))
            with self._rescan_lock:
                rescans, self._rescan_roots = self._rescan_roots, set()
            for root in sorted(rescans):
                pending.append(self._pool.submit(self._safe(self._scan_tree), root))
            pending = [f for f in pending if not f.done()]
            if time.monotonic() - last_cache_save > 30:
                self._save_cache()
                last_cache_save = time.monotonic()
        self._shutdown(scan_thread)

    def _shutdown(self, scan_thread: threading.Thread | None) -> None:
        systemd_notify.stopping("flushing records")
        self.control.stop()
        self.activity.stop()
        self.sensor.stop()
        # Paths still settling are examined now: a copy finished just before shutdown is not lost.
        for path in self.settler.due(float("inf")):
            self._pool.submit(self._safe(self._examine_path), path)
        self._pool.shutdown(wait=True)
        if scan_thread is not None:
            scan_thread.join(timeout=60)
        self.record(Event(Action.AGENT_STOPPED, Category.HOST, "Weightwarden agent stopped",
                          details={"known_model_files": len(self.inventory), "handler_errors": self.errors,
                                   **self.evidence.final_signature()}))  # signs everything before it
        self.evidence.stop()  # lets the forwarders deliver agent-stopped
        self.writer.close()
        self._save_cache()
        self.store.close()

    def record(self, record: Record) -> None:
        if isinstance(record, Alert) and record.rule_id == "model-copy":
            record = self.detector.adjust_copy(record)  # severity by destination: rules/detections/20_model_copy.yml
        if isinstance(record, Alert):
            log.warning("ALERT %s (severity %d): %s", record.rule_id, record.severity, record.message)
        self.writer.submit(record)
        if isinstance(record, Event):
            for alert in self.detector.process(record):
                self.record(alert)

    # ------------------------------------------------------------------ sensor input

    def _observe(self, obs: FileObservation) -> None:
        if obs.kind == "overflow":
            self._health(SensorHealth("files", "degraded",
                                      "file event queue overflowed; events were lost, rescanning watched roots"))
            with self._rescan_lock:
                self._rescan_roots.update(self.config.watch_roots)
            self._wake.set()
            return
        if self._ignored(obs.path) and (obs.dest_path is None or self._ignored(obs.dest_path)):
            return
        now = time.monotonic()
        if obs.kind == "deleted":
            self.settler.forget(obs.path)
            self._gone(obs.path, obs.is_directory)
        elif obs.kind == "moved":
            self.settler.forget(obs.path)
            self._moved(obs.path, obs.dest_path or obs.path, obs.is_directory)
        elif obs.is_directory:
            with self._rescan_lock:  # `cp -r` or an unpacked archive: files may predate our watch on it
                self._rescan_roots.add(obs.path)
            self._wake.set()
        elif obs.kind == "closed":
            self.settler.closed(obs.path)
        else:
            self.settler.touch(obs.path, now)

    def _heartbeat_status(self) -> dict[str, Any]:
        """What a heartbeat carries besides the backlog: coverage and sensor health."""
        snapshot = self.activity.snapshot()
        return {"mode": snapshot["mode"], "coverage": snapshot["coverage"], "gaps": snapshot["gaps"],
                "sensors": snapshot["sensors"], "handler_errors": self.errors,
                "writer_failures": self.writer.failures, "version": __version__}

    def _scan_now(self) -> None:
        with self._rescan_lock:
            self._rescan_roots.update(self.config.protected_roots)
        self._wake.set()

    def _reviewed(self, review: dict[str, Any]) -> None:
        """A review made through the control socket is also an event, so it is chained and forwarded."""
        self.record(Event(Action.ALERT_REVIEWED, Category.INTRUSION_DETECTION,
                          f"alert {review['alert_id']}: {review['action']} by {review['user']}",
                          details=review))

    def _queue_rescan(self, roots: list[str]) -> None:
        with self._rescan_lock:
            self._rescan_roots.update(roots)
        self._wake.set()

    def _health(self, health: SensorHealth) -> None:
        self.record(Event(Action.SENSOR_HEALTH, Category.HOST, f"{health.sensor}: {health.status}: {health.message}",
                          severity=0 if health.status == "running" else 3,
                          details={"sensor": health.sensor, "status": health.status}))

    # ------------------------------------------------------------------ examination

    def _examine_path(self, path: str, recheck_non_model: bool = False) -> None:
        if os.path.isdir(path):
            self._scan_tree(path)
            return
        early_alert: list[Alert] = []

        def on_identified(partial: ModelFile) -> None:
            raised = self._alerted_while_changing.get(path)
            if raised is not None:  # an earlier look at this copy raised it, then the file changed under us
                early_alert.append(raised)
                return
            alert = self._copy_alert(partial)
            if alert is not None:
                early_alert.append(alert)
                self.record(alert)

        outcome = self.scanner.examine(path, on_identified=on_identified, recheck_non_model=recheck_non_model)
        if isinstance(outcome, ScanIssue):
            if outcome.changing:
                # `cp -p`, `rsync -a`, `mv` across filesystems set the mtime after closing the copy, and the
                # file sensor does not report attribute changes: look again once it has settled.
                log.debug("%s changed while it was examined; examining it again once it settles", path)
                if early_alert:
                    self._alerted_while_changing[path] = early_alert[0]
                self.settler.touch(path, time.monotonic())
                return
            self._alerted_while_changing.pop(path, None)
            self._issue(outcome)
            return
        self._alerted_while_changing.pop(path, None)
        if outcome is None:
            if self.inventory.get(display_path(path)) is not None:
                self._gone(path, False, reason="no longer a model file")
            return
        self._accept(outcome, Action.MODEL_CREATED, early_alert[0] if early_alert else None, alert_copies=True)
        # Its .bin, external data, ... (or the index of this data shard) may have been examined before this
        # file existed, and cached as "not a model".
        for partner in self.scanner.stale_partners(path, outcome):
            self._examine_path(partner, recheck_non_model=True)

    def _accept(self, model: ModelFile, action: Action, alert: Alert | None, *, alert_copies: bool) -> None:
        """Record a model file found at a path; raise `model-copy` when it copies a protected model."""
        with self._inventory_lock:
            previous = self.inventory.get(model.path)
            if previous is not None and _same_content(previous, model):
                return  # touched or re-read, nothing new
            sources = self.inventory.matches(model)
            # Not byte-identical: maybe converted, re-sharded, cast or partial (tensor fingerprints).
            derived = [] if sources else self._derived_matches(model)
            if alert is None and alert_copies and previous is None:
                alert = self._copy_alert(model, sources) or detect_derived_copy(
                    model, derived, self._destination_kind(model.path))
                if alert is not None:
                    self.record(alert)
            details: dict[str, Any] = {"format_details": model.details}
            if sources:
                model = dataclasses.replace(model, model=sources[0].model)
                details["copy_of"] = sources[0].path
                details["confirmed_by_sha256"] = bool(model.sha256 and model.sha256 == sources[0].sha256)
            elif derived:
                model = dataclasses.replace(model, model=derived[0].model)
                details["derived_from"] = {"model": derived[0].model, "paths": list(derived[0].source_paths[:20]),
                                           "tensor_share": round(derived[0].tensor_share, 4),
                                           "byte_share": round(derived[0].byte_share, 4)}
            if previous is not None:
                action = Action.MODEL_MODIFIED
            self.inventory.add(model)
            self.store.upsert_model_files([model], seen=utc_now())
        self.record(Event(
            action, Category.FILE, f"{action.value.replace('-', ' ')}: {model.path} ({model.format})",
            file=_file_info(model), model=model.model, details=details,
            severity=0))
        if alert is not None:
            log.info("copy alert %s for %s", alert.id, model.path)

    def _copy_alert(self, model: ModelFile, sources: list[ModelFile] | None = None) -> Alert | None:
        if self.inventory.get(model.path) is not None:
            return None  # a known file changed in place: not a copy
        sources = self.inventory.matches(model) if sources is None else sources
        return detect_copy(model, sources, self._destination_kind(model.path))

    def _derived_matches(self, model: ModelFile) -> list[TensorMatch]:
        """Known models whose tensors `model` holds, other than its own logical model (a converted sibling
        in the same repository or folder, say model.safetensors beside pytorch_model.bin, is not a copy)."""
        if self.inventory.get(model.path) is not None:
            return []
        return [m for m in self.inventory.tensor_matches(model) if m.model != model.model]

    def _gone(self, path: str, is_directory: bool, reason: str = "deleted") -> None:
        shown = display_path(path)
        gone = self.inventory.under(shown) if is_directory else [m for m in [self.inventory.get(shown)] if m]
        if not gone:
            return
        with self._inventory_lock:
            for model in gone:
                self.inventory.remove(model.path)
            self.store.mark_model_files_gone(m.path for m in gone)
        for model in gone:
            self.record(Event(Action.MODEL_DELETED, Category.FILE, f"model file {reason}: {model.path}",
                              file=_file_info(model), model=model.model))

    def _moved(self, src: str, dest: str, is_directory: bool) -> None:
        shown_src, shown_dest = display_path(src), display_path(dest)
        moved = self.inventory.under(shown_src) if is_directory else \
            [m for m in [self.inventory.get(shown_src)] if m]
        if is_directory:
            with self._rescan_lock:
                self._rescan_roots.add(dest)  # unknown files inside are examined by the rescan
            self._wake.set()
        elif not moved:
            self.settler.touch(dest, float("-inf"))  # an unknown file renamed into view: examine now
            return
        for model in moved:
            new_path = shown_dest + model.path[len(shown_src):] if is_directory else shown_dest
            with self._inventory_lock:
                self.inventory.remove(model.path)
                renamed = dataclasses.replace(model, path=new_path)
                self.inventory.add(renamed)
                self.store.mark_model_files_gone([model.path])
                self.store.upsert_model_files([renamed], seen=utc_now())
            self.record(Event(Action.MODEL_MOVED, Category.FILE, f"model file moved: {model.path} -> {new_path}",
                              file=_file_info(renamed), previous_path=model.path, model=model.model,
                              details={"destination_kind": self._destination_kind(new_path)}))

    # ------------------------------------------------------------------ scans

    def _initial_scan(self) -> None:
        """Inventory the protected roots, then look at the watched ones for copies made while we were away."""
        first_run = len(self.inventory) == 0
        self._scan_tree_set(self.config.protected_roots, alert_copies=not first_run, prune=True)
        extra = [r for r in self.config.watch_roots if r not in self.config.protected_roots]
        if extra and not first_run:
            self._scan_tree_set(extra, alert_copies=True, prune=False)

    def _scan_tree(self, root: str) -> None:
        """Rescan one tree (a directory that appeared, or a root after lost events)."""
        self._scan_tree_set([root], alert_copies=True, prune=True)

    def _scan_tree_set(self, roots: list[str], *, alert_copies: bool, prune: bool) -> None:
        stats = ScanStats()
        seen: set[str] = set()
        started = time.monotonic()
        for item in self.scanner.scan(roots, exclude_dirs=self.config.inventory.exclude_dirs, stats=stats):
            if self._stop.is_set():
                break
            if isinstance(item, ScanIssue):
                self._issue(item)
                continue
            if self._ignored(item.path):
                continue
            seen.add(item.path)
            previous = self.inventory.get(item.path)
            action = Action.MODEL_DISCOVERED if previous is None else Action.MODEL_MODIFIED
            self._accept(item, action, None, alert_copies=alert_copies)
            if previous is None:
                self._safe(self._posture)(item)
        if prune and not self._stop.is_set():
            for root in roots:
                missing = [m.path for m in self.inventory.under(display_path(root)) if m.path not in seen]
                for path in missing:
                    self._gone(path, False, reason="missing at rescan")
        self._save_cache()
        self.record(Event(Action.SCAN_FINISHED, Category.FILE,
                          f"scanned {stats.files} files, {stats.models} model files under {len(roots)} roots",
                          details={"roots": [display_path(r) for r in roots], "files": stats.files,
                                   "models": stats.models, "bytes": stats.bytes,
                                   "cache_hits": stats.cache_hits, "issues": stats.issues,
                                   "seconds": round(time.monotonic() - started, 3)}))

    def _posture(self, model: ModelFile) -> None:
        """Weak permissions or places of a newly inventoried model (agent/detect/posture.py), as events."""
        facts = posture.facts_of(model.path, self._destination_kind(model.path))
        for finding in posture.findings(facts) if facts is not None else []:
            self.record(Event(Action.POSTURE_FINDING, Category.HOST, finding.message, file=_file_info(model),
                              model=model.model, severity=finding.severity, details={"finding": finding.id}))

    def _issue(self, issue: ScanIssue) -> None:
        self.record(Event(Action.SCAN_ERROR, Category.FILE, f"{issue.path}: {issue.reason}",
                          file=FileInfo(path=issue.path), severity=1, details={"reason": issue.reason}))

    # ------------------------------------------------------------------ helpers

    def _save_cache(self) -> None:
        self.store.save_file_cache(self.cache.drain_unsaved())

    def _ignored(self, path: str) -> bool:
        return (path.rstrip("/") + "/").startswith(self._ignored_prefix)

    def _destination_kind(self, path: str) -> str:
        real = os.path.realpath(path)
        kind = path_kind(real)  # the kind of the mount (or sync folder) it is in: agent/sensors/mounts.py
        # A stick, share, image or sync folder says more about where the copy goes than a temporary parent.
        if kind == "local" and any(real == root or real.startswith(root.rstrip("/") + "/")
                                   for root in self._temp_roots):
            return "temporary"
        return kind

    def _safe(self, handler: Callable[..., None]) -> Callable[..., None]:
        """Log and count a failing handler instead of letting it kill its thread."""
        def call(*args: Any) -> None:
            try:
                handler(*args)
            except Exception:
                self.errors += 1
                log.exception("%s failed", getattr(handler, "__name__", handler))
        return call


def _file_info(model: ModelFile) -> FileInfo:
    return FileInfo(path=model.path, size=model.size, format=model.format, sha256=model.sha256,
                    quick_fingerprint=model.quick_fingerprint, inode=model.inode, device=model.device,
                    mtime_ns=model.mtime_ns, path_hex=model.path_hex)


def _same_content(a: ModelFile, b: ModelFile) -> bool:
    if a.sha256 and b.sha256:
        return a.sha256 == b.sha256 and a.size == b.size
    return a.quick_fingerprint == b.quick_fingerprint and a.size == b.size and a.mtime_ns == b.mtime_ns


def _temporary_roots() -> list[str]:
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"}
    return sorted(os.path.realpath(r) for r in roots if os.path.isdir(r))
