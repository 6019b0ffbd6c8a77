"""Agent health as the app shows it, read from the host events the agent records (starts, sensor
health, drops) plus whether its control socket answers; discovery's progress from the agent's status
snapshot (the same `discovery` entry `weightwarden status` prints)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AgentHealth:
    started: dict[str, Any] | None = None  # details of the latest agent-started
    sensors: dict[str, tuple[str, str]] = field(default_factory=dict)  # sensor -> (status, message)
    drops: int = 0  # overflow / events-dropped records since the start

    @property
    def coverage(self) -> str:
        return str((self.started or {}).get("coverage", "unknown"))

    @property
    def warnings(self) -> list[str]:
        found = [f"{name}: {message}" for name, (status, message) in sorted(self.sensors.items())
                 if status != "running"]
        return found


def agent_health(host_events: list[dict[str, Any]]) -> AgentHealth:
    """From host events newest first: everything since the latest start."""
    health = AgentHealth()
    for event in host_events:
        action = (event.get("event") or {}).get("action")
        details = event.get("details") or {}
        if action == "agent-started":
            health.started = details
            break
        if action == "sensor-health":
            sensor = str(details.get("sensor", "?"))
            if sensor not in health.sensors:
                message = str(event.get("message", ""))
                health.sensors[sensor] = (str(details.get("status", "?")), message.split(": ", 2)[-1])
            if "overflow" in str(event.get("message", "")):
                health.drops += 1
        elif action == "events-dropped":
            health.drops += int(details.get("count", 1) or 1)
    return health


@dataclass
class DiscoveryProgress:
    """The `discovery` entry of the agent's status snapshot (agent/discovery/discovery.py, snapshot())."""

    state: str = "not running"
    pass_number: int = 0
    passes_done: int = 0
    files_seen: int = 0
    models_found: int = 0
    bytes_per_second: int = 0
    current_root: str | None = None
    not_covered: list[str] = field(default_factory=list)
    idle_priority: bool = True
    priority_message: str = ""

    def lines(self) -> list[str]:
        """HTML lines for the Overview's health card (paths escaped)."""
        found = [f"{html.escape(self.state)}: pass {self.pass_number}, {self.passes_done} done",
                 f"{self.files_seen:,} files looked at, {self.models_found:,} models found this pass"
                 + (f", {self.bytes_per_second / 1e6:.1f} MB/s" if self.bytes_per_second else "")]
        if self.current_root:
            found.append(f"under {html.escape(self.current_root)}")
        if not self.idle_priority:
            found.append(f"<span style='color:#ef6c00'>not at idle priority: {html.escape(self.priority_message)}"
                         "</span>")
        found += [f"<span style='color:#777'>not covered: {html.escape(item)}</span>" for item in self.not_covered[:5]]
        return found


def discovery_progress(status_json: str | None) -> DiscoveryProgress | None:
    """From the stored status snapshot; None when the agent runs no discovery (protect = "roots") or has not
    written a status yet."""
    try:
        snapshot = json.loads(status_json) if status_json else None
    except ValueError:
        return None
    entry = snapshot.get("discovery") if isinstance(snapshot, dict) else None
    if not isinstance(entry, dict):
        return None
    priority = entry.get("priority") or {}
    return DiscoveryProgress(
        state=str(entry.get("state", "?")), pass_number=int(entry.get("pass") or 0),
        passes_done=int(entry.get("passes_done") or 0), files_seen=int(entry.get("files_seen") or 0),
        models_found=int(entry.get("models_found") or 0), bytes_per_second=int(entry.get("bytes_per_second") or 0),
        current_root=entry.get("current_root"), not_covered=[str(i) for i in entry.get("not_covered") or []],
        idle_priority=bool(priority.get("idle", True)), priority_message=str(priority.get("message") or ""))


def coverage_lines(status_json: str | None) -> list[str]:
    """HTML lines for the Overview's coverage: the people covered (and not, with why), the roots, the mounts
    watched and the filesystems marked, from the status snapshot `weightwarden status` prints too."""
    try:
        snapshot = json.loads(status_json) if status_json else None
    except ValueError:
        return []
    if not isinstance(snapshot, dict):
        return []
    lines: list[str] = []
    scope = snapshot.get("scope")
    if isinstance(scope, dict):
        users = [u for u in scope.get("users_covered") or [] if isinstance(u, dict)]
        names = ", ".join(html.escape(str(u.get("name", "?"))) for u in users) or "none"
        lines.append(f"Users covered: {names}")
        lines.append(f"Roots: {len(scope.get('protected_roots') or [])} protected, "
                     f"{len(scope.get('watch_roots') or [])} watched")
        people = [n for n in scope.get("not_covered") or [] if isinstance(n, dict)
                  and n.get("why") != "system-account"]
        for person in people[:5]:
            lines.append(f"<span style='color:#777'>not covered: {html.escape(str(person.get('name', '?')))} "
                         f"({html.escape(str(person.get('why', '?')))})</span>")
    for sensor in snapshot.get("sensors") or []:
        if isinstance(sensor, dict) and sensor.get("name") in ("fs-writes", "mounts-watched"):
            what = "Filesystems marked" if sensor["name"] == "fs-writes" else "Mounts watched"
            lines.append(f"{what}: {html.escape(str(sensor.get('message', '')))}")
    return lines
