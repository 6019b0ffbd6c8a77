"""The `audit-summary` event: an audit's summary as a chained, forwarded record (`weightwarden audit --record`).

The agent is the store's only writer (its hash chain head lives in the writer), so the command hands the
summary to the running agent over the control socket (op "record-audit", admins only), and the agent builds
the event with `summary_event`; with no agent running, the command writes the event into the store itself.
Severity by findings: SEVERITY_HIGH_RISK when any file has a high-risk flag, SEVERITY_FINDINGS when any has
another flag, 0 otherwise.
"""

from __future__ import annotations

from typing import Any

from weightwarden.agent.audit.report import FLAGS
from weightwarden.agent.events import Action, Category, Event

SEVERITY_HIGH_RISK, SEVERITY_FINDINGS = 5, 3
COUNTS = ("files", "present", "missing", "with_findings", "high_risk")


class SummaryError(ValueError):
    """A summary handed to the agent that is not an audit summary (a count missing or not a whole number)."""


def clean_summary(summary: object) -> dict[str, Any]:
    """The summary's known counts, checked: what a peer sends over the socket is not trusted to be well formed."""
    if not isinstance(summary, dict):
        raise SummaryError("summary must be an object")
    out: dict[str, Any] = {}
    for key in COUNTS:
        value = summary.get(key)
        if type(value) is not int or value < 0:
            raise SummaryError(f"summary.{key} must be a whole number")
        out[key] = value
    flags = summary.get("flags")
    if not isinstance(flags, dict):
        raise SummaryError("summary.flags must be an object")
    out["flags"] = {}
    for flag in FLAGS:
        value = flags.get(flag, 0)
        if type(value) is not int or value < 0:
            raise SummaryError(f"summary.flags.{flag} must be a whole number")
        out["flags"][flag] = value
    return out


def summary_event(summary: object) -> Event:
    clean = clean_summary(summary)
    severity = SEVERITY_HIGH_RISK if clean["high_risk"] else SEVERITY_FINDINGS if clean["with_findings"] else 0
    found = ", ".join(f"{flag} {n}" for flag, n in clean["flags"].items() if n) or "no findings"
    message = (f"audit: {clean['files']} protected model files ({clean['missing']} missing): {found}; "
               f"{clean['high_risk']} at high risk")
    return Event(Action.AUDIT_SUMMARY, Category.HOST, message, severity=severity, details={"summary": clean})
