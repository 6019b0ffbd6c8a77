"""copy: the model-copy rule. Not fed events: the inventory's fingerprint matches of a new file are
(agent/detect/copy.py CopyCandidate, DetectionEngine.copy); the rule's `severity_by_destination` is the one
table of how far each kind of place is from the model's home."""

from __future__ import annotations

from collections.abc import Mapping

from weightwarden.agent.detect.correlations.base import Correlation

ELSEWHERE = "elsewhere"  # the table's entry for kinds it does not name


class Copy(Correlation):
    kind = "copy"
    counts = ("nothing per event: it is fed each new file whose bytes (quick fingerprint, SHA-256) or tensors "
              "(tensor fingerprints) match a protected model")
    decides = ("alerts on every match; the severity is the rule's `severity_by_destination` for the kind of place "
               "the file landed in (`elsewhere` for kinds it does not name, else the rule's severity)")
    on_events = False
    takes_severity_by_destination = True


def severity_for(table: Mapping[str, int], default: int, destination_kind: str) -> tuple[int, str]:
    """The severity of a copy that landed in a place of this kind, and why (for the evidence)."""
    if destination_kind in table:
        return table[destination_kind], f"destination {destination_kind}"
    if ELSEWHERE in table:
        return table[ELSEWHERE], f"destination {destination_kind} ({ELSEWHERE})"
    return default, "rule severity"
