"""Agent health as the app shows it, read from the host events the agent records (starts, sensor
health, drops) plus whether its control socket answers."""

from __future__ import annotations

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
