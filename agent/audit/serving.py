"""The audit's model servers (docs/serving.md): the servers of protected models the running agent sees now
(its status snapshot), and every exposure finding it recorded (alerts of the rules in
rules/detections/90_model_serving.yml), so a server started and stopped between two audits stays on record.

    serving               {"servers": [the status snapshot's rows: agent/serving/section.py ServerRow],
                           "agent_running": bool, "findings": [{"alert_id", "time", "rule", "severity",
                           "model", "message", "user"}]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.serving.section import ServerRow

EXPOSURE_RULES = ("model-served-to-all-interfaces", "model-served-on-lan-address", "model-served-on-container-bridge")


@dataclass(frozen=True, slots=True)
class ExposureFinding:
    alert_id: str
    time: str
    rule: str
    severity: int
    model: str | None
    message: str
    user: str | None


@dataclass
class ServingAudit:
    servers: list[ServerRow] = field(default_factory=list)
    agent_running: bool = False
    findings: list[ExposureFinding] = field(default_factory=list)

    @property
    def exposed_now(self) -> int:
        return sum(1 for s in self.servers if s.exposed)

    def to_dict(self) -> dict[str, Any]:
        return {"servers": [s.to_dict() for s in self.servers], "agent_running": self.agent_running,
                "findings": [{"alert_id": f.alert_id, "time": f.time, "rule": f.rule, "severity": f.severity,
                              "model": f.model, "message": f.message, "user": f.user} for f in self.findings]}


def findings_of(alerts: Iterable[Mapping[str, Any]]) -> list[ExposureFinding]:
    """The exposure findings among stored alert records (first alert of each incident only)."""
    found: list[ExposureFinding] = []
    for alert in alerts:
        evidence = alert.get("evidence") or {}
        if alert.get("rule") not in EXPOSURE_RULES or (evidence.get("incident") not in (None, alert.get("id"))):
            continue
        process = alert.get("process") or {}
        found.append(ExposureFinding(str(alert.get("id")), str(alert.get("time")), str(alert.get("rule")),
                                     int(alert.get("severity") or 0), alert.get("model"), str(alert.get("message")),
                                     process.get("user")))
    return found


def serving_lines(audit: ServingAudit) -> list[str]:
    lines = [f"model servers: {len(audit.servers)} now"
             + ("" if audit.agent_running else " (the agent is not running: not known now)")
             + f", {audit.exposed_now} exposed; {len(audit.findings)} exposure findings on record"]
    lines += [f"  {f.time} [{f.severity}] {f.message}" for f in audit.findings[-20:]]
    return lines
