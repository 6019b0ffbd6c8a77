"""Activity monitoring: the access, process, network and mount sensors, turned into events.

The agent creates one `ActivityMonitor`, starts and stops it, and gives it three callbacks (record an
event, report health, rescan roots). The monitor picks each sensor's implementation for this platform and
privilege (`sensors.platform.plan`), keeps the fanotify marks in step with the inventory, translates
observations into Events (ECS process.* with its parent chain, file.*, destination.*), and writes a status
snapshot into the store every few seconds for `weightwarden status`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from weightwarden.agent.config import Config
from weightwarden.agent.events import Action, Category, Event, FileInfo, ProcessInfo, Record, format_time, utc_now
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors.access import AccessObservation, AccessSensor
from weightwarden.agent.sensors.base import Sensor, SensorStatus, privilege
from weightwarden.agent.sensors.files import SensorHealth
from weightwarden.agent.sensors.holders import HolderSensor
from weightwarden.agent.sensors.mounts import MountObservation, MountSensor
from weightwarden.agent.sensors.network import ConnectionObservation, NetworkSensor
from weightwarden.agent.sensors.platform import SensorPlan, plan
from weightwarden.agent.sensors.processes import PollingProcessSensor, ProcConnectorSensor

log = logging.getLogger(__name__)

STATUS_KEY = "status"
MARK_SYNC_SECONDS = 1.0


class ActivityMonitor:
    def __init__(self, config: Config, inventory: Inventory, record: Callable[[Record], None],
                 on_health: Callable[[SensorHealth], None], rescan: Callable[[list[str]], None],
                 *, extra_status: Callable[[], list[SensorStatus]] | None = None,
                 write_state: Callable[[str, str], None] | None = None,
                 interested: Callable[[ProcessInfo | None], bool] | None = None) -> None:
        self.config = config
        self.inventory = inventory
        self._record = record
        self._on_health = on_health
        self._rescan = rescan
        self._extra_status = extra_status
        self._write_state = write_state
        settings = config.sensors
        self.plan: SensorPlan = plan(settings, mode=config.mode)
        self.cache = ProcessCache()
        self.sensors: list[Sensor] = []
        self.processes: Sensor
        if self.plan.processes == "proc-connector":
            self.processes = ProcConnectorSensor(self.cache, on_health)
        else:
            self.processes = PollingProcessSensor(self.cache, on_health, self.plan.gaps.get("processes", ""))
        self.sensors.append(self.processes)
        self.access: AccessSensor | HolderSensor | None = None
        if self.plan.access == "fanotify":
            self.access = AccessSensor(self.cache, self._access, on_health, self._overflow,
                                       hold_opens=settings.hold_opens)
        elif self.plan.access == "holders":
            self.access = HolderSensor(self.cache, self._access, on_health, self.plan.gaps.get("access", ""))
        if self.access is not None:
            self.sensors.append(self.access)
        self.network: NetworkSensor | None = None
        if self.plan.network != "off":
            self.network = NetworkSensor(self.cache, self._connection, on_health,
                                         interval=settings.network_poll_seconds,
                                         use_sock_diag=self.plan.network == "sock_diag",
                                         reason=self.plan.gaps.get("network", ""),
                                         interested=interested)  # live progress of these trees' uploads
            self.sensors.append(self.network)
        self.mounts: MountSensor | None = MountSensor(self._mount, on_health) if self.plan.mounts else None
        if self.mounts is not None:
            self.sensors.append(self.mounts)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._marked_generation: frozenset[str] = frozenset()
        self.errors = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.plan.gaps:
            self._on_health(SensorHealth("coverage", "degraded", "reduced coverage: " + "; ".join(
                f"{name}: {why}" for name, why in sorted(self.plan.gaps.items()))))
        for sensor in self.sensors:
            try:
                sensor.start()
            except Exception as error:  # one sensor failing never stops the others
                self.errors += 1
                log.exception("sensor %s failed to start", sensor.name)
                self._on_health(SensorHealth(sensor.name, "failed", f"could not start: {error}"))
        self.sync_marks()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ww-activity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
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
        while not self._stop.wait(MARK_SYNC_SECONDS):
            try:
                self.sync_marks()
                if time.monotonic() - last_status >= self.config.sensors.status_seconds:
                    self.write_status()
                    last_status = time.monotonic()
            except Exception:
                self.errors += 1
                log.exception("activity upkeep failed")

    def sync_marks(self) -> None:
        """Mark exactly the inventory's files (new models marked, deleted ones unmarked)."""
        if self.access is None:
            return
        paths = frozenset(m.path for m in self.inventory.under("/"))
        if paths != self._marked_generation:
            self.access.protect(paths)
            self._marked_generation = paths

    # ------------------------------------------------------------------ status

    def statuses(self) -> list[SensorStatus]:
        found = list(self._extra_status()) if self._extra_status else []
        for sensor in self.sensors:
            try:
                found.append(sensor.status())
            except Exception:
                log.exception("status of %s failed", sensor.name)
        return found

    def snapshot(self, *, stopped: bool = False) -> dict[str, Any]:
        return {
            "time": format_time(utc_now()),
            "pid": os.getpid(),
            "mode": self.config.mode,
            "privilege": privilege(),
            "coverage": "full" if self.plan.full_coverage else "reduced",
            "gaps": self.plan.gaps,
            "running": not stopped,
            "uptime_seconds": round(time.monotonic() - self._started, 1),
            "interval_seconds": self.config.sensors.status_seconds,
            "protected_files": len(self.inventory),
            "process_cache": len(self.cache),
            "sensors": [s.to_dict() for s in self.statuses()],
        }

    def write_status(self, *, stopped: bool = False) -> None:
        if self._write_state is not None:
            self._write_state(STATUS_KEY, json.dumps(self.snapshot(stopped=stopped), sort_keys=True))

    # ------------------------------------------------------------------ observations -> events

    def _overflow(self) -> None:
        self._rescan(self.config.protected_roots)

    def _access(self, obs: AccessObservation) -> None:
        try:
            self._record(self.access_event(obs))
        except Exception:
            self.errors += 1
            log.exception("access event failed")

    def access_event(self, obs: AccessObservation) -> Event:
        model = self.inventory.get(obs.path)
        action = {"opened": Action.MODEL_OPENED, "read": Action.MODEL_READ, "written": Action.MODEL_WRITTEN,
                  "held": Action.MODEL_HELD}[obs.kind]
        process = obs.process
        if obs.kind in ("read", "held"):
            process = replace(process, bytes_read=obs.bytes_read, mapped=obs.mapped)
        who = f"{process.name or '?'} (pid {process.pid}, user {process.user or process.uid})"
        verb = {"opened": "opened", "read": "read", "written": "wrote", "held": "holds open"}[obs.kind]
        details: dict[str, Any] = {}
        if obs.kind in ("read", "held"):
            details["access"] = {
                "bytes_read": obs.bytes_read, "bytes_read_source": obs.bytes_read_source,
                "mapped": obs.mapped, "seconds_open": obs.seconds_open,
                "mode": "mmap" if obs.mapped else ("read" if obs.bytes_read else "unknown"),
                "read_fraction": round(obs.bytes_read / obs.size, 4) if obs.bytes_read and obs.size else None,
            }
        how = ""
        if obs.kind == "read":
            how = " (memory-mapped)" if obs.mapped else (
                f" ({obs.bytes_read} bytes)" if obs.bytes_read is not None else "")
        return Event(
            action, Category.FILE, f"{who} {verb} {obs.path}{how}",
            file=FileInfo(path=obs.path, size=obs.size, inode=obs.inode, device=obs.device,
                          format=model.format if model else None, sha256=model.sha256 if model else None,
                          quick_fingerprint=model.quick_fingerprint if model else None),
            model=model.model if model else None, process=process, details=details)

    def _connection(self, obs: ConnectionObservation) -> None:
        try:
            self._record(self.connection_event(obs))
        except Exception:
            self.errors += 1
            log.exception("network event failed")

    def connection_event(self, obs: ConnectionObservation) -> Event:
        who = f"{obs.process.name} (pid {obs.process.pid})" if obs.process else "unknown process"
        sent = f", {obs.bytes_sent} bytes sent" if obs.bytes_sent is not None and obs.phase != "opened" else ""
        verb = {"opened": "connected to", "progress": "is sending to"}.get(obs.phase, "closed connection to")
        return Event(
            Action.NETWORK_CONNECTION, Category.NETWORK, f"{who} {verb} {obs.remote}:{obs.remote_port}{sent}",
            process=obs.process,
            details={"phase": obs.phase, "destination": {"kind": "network", "address": obs.remote,
                                                          "port": obs.remote_port},
                     "source": {"address": obs.local, "port": obs.local_port}, "netns": obs.netns,
                     "bytes_sent": obs.bytes_sent, "bytes_received": obs.bytes_received,
                     "bytes_source": obs.bytes_source, "seconds": obs.seconds})

    def _mount(self, obs: MountObservation) -> None:
        m = obs.mount
        try:
            self._record(Event(
                Action.MOUNT_ADDED if obs.phase == "added" else Action.MOUNT_REMOVED, Category.HOST,
                f"{m.kind} mount {obs.phase}: {m.mount_point} ({m.fstype} from {m.source})",
                severity=2 if m.kind in ("removable", "network-share", "cloud-sync", "disk-image")
                and obs.phase == "added" else 0,
                details={"mount_point": m.mount_point, "fstype": m.fstype, "source": m.source, "kind": m.kind,
                         "options": m.options, "backing_file": m.backing_file}))
        except Exception:
            self.errors += 1
            log.exception("mount event failed")


def file_sensor_status(sensor: Any) -> SensorStatus:
    """The watchdog file sensor's line in `weightwarden status` (it predates the Sensor interface)."""
    observers = getattr(sensor, "_observers", [])
    polling = any(type(o).__name__ == "PollingObserver" for o in observers)
    return SensorStatus("files", "degraded" if polling else ("running" if observers else "stopped"),
                        "watchdog+polling" if polling else "watchdog", privilege(),
                        f"watching {len(getattr(sensor, 'roots', []))} roots")


def store_status(writer: Any) -> SensorStatus:
    """The store writer's line: records waiting to be committed (backlog) and failed batches (drops)."""
    queue = getattr(writer, "_queue", None)
    failures = int(getattr(writer, "failures", 0))
    return SensorStatus("store", "degraded" if failures else "running", "sqlite", privilege(),
                        f"{failures} batches failed and were retried" if failures else "batched writes",
                        backlog=queue.qsize() if queue is not None else 0, drops=failures)
