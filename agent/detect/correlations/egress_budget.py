"""egress-budget: a process tree that read protected model bytes sends a comparable number of them out.

Training and inference read models and send nothing comparable; an upload, whatever its shape (archive,
cipher, parts), sends about as much as it read. Bytes sent to allowlisted destinations (the organisation's
own hosts) never count against the budget.
"""

from __future__ import annotations

import fnmatch

from weightwarden.agent.alert_evidence import EgressBudgetEvidence
from weightwarden.agent.detect.correlations.base import Correlation, Parameter, Situation, Values, Verdict
from weightwarden.agent.events import Destination

CONNECTIONS_LISTED = 20
FILES_LISTED = 20


class EgressBudget(Correlation):
    kind = "egress-budget"
    counts = ("per process tree: protected bytes read from each model file, and bytes sent on each connection "
              "to destinations outside the allowlist")
    decides = ("alerts once the bytes sent reach `ratio` of the bytes read; `progress` is sent / the model's size, "
               "and the alert is updated at each further quarter")
    parameters = (
        Parameter("ratio", "number", 0.5, "0.5 = half the model's bytes", low=0.0, low_exclusive=True, high=10.0,
                  setting="egress_ratio"),
        Parameter("min_bytes", "integer", 1.0, "protected bytes a tree must have read before it is judged"),
    )
    tree_wide = True

    def decide(self, situation: Situation, values: Values) -> Verdict | None:
        tree, ratio = situation.tree, values["ratio"]
        read = sum(tree.read.values())
        if read < values["min_bytes"] or not tree.sent:
            return None
        counted = {key: sent for key, (address, sent) in tree.sent.items()
                   if not any(fnmatch.fnmatchcase(address, glob) for glob in situation.allow.destinations)}
        sent = sum(counted.values())
        if sent < ratio * read:
            return None
        size = sum(tree.sizes.get(path, 0) for path in tree.read) or read
        progress = round(min(sent / size, 1.0), 4)
        evidence = EgressBudgetEvidence(
            bytes_sent=sent, bytes_read=read, model_bytes=size, ratio=ratio, progress=progress,
            connections=tuple(sorted(counted.items())[:CONNECTIONS_LISTED]),
            models=tuple(sorted({tree.models[p] for p in tree.read if p in tree.models})),
            files=tuple(sorted(tree.read)[:FILES_LISTED]))
        target = situation.event.details.get("destination") or {}
        return Verdict(evidence, Destination("network", target.get("address"), target.get("port")), progress,
                       f" ({sent} of {size} model bytes sent, {progress:.0%})")
