"""bulk-collection: one process tree reads many distinct protected models in a short window.

Collecting before exfiltration: copies and archives of a model zoo read model after model; an evaluation
job does too, which is why the built-in rule's condition leaves ML runtimes out.
"""

from __future__ import annotations

from weightwarden.agent.alert_evidence import BulkCollectionEvidence
from weightwarden.agent.detect.correlations.base import Correlation, Parameter, Situation, Values, Verdict

MODELS_LISTED = 50


class BulkCollection(Correlation):
    kind = "bulk-collection"
    counts = "per process tree: the distinct protected models it read, with the time of each read"
    decides = "alerts once `distinct_models` distinct models were read within `within`"
    parameters = (
        Parameter("distinct_models", "integer", 5.0, "distinct models read within the window", low=2.0,
                  high=100_000.0, setting="bulk_models"),
        Parameter("within", "duration", 600.0, "the window", low=0.0, low_exclusive=True,
                  setting="bulk_window_seconds"),
    )
    tree_wide = True

    def decide(self, situation: Situation, values: Values) -> Verdict | None:
        window = values["within"]
        models = sorted({model for at, model in situation.tree.reads if situation.now - at <= window})
        if len(models) < values["distinct_models"]:
            return None
        return Verdict(BulkCollectionEvidence(distinct_models=len(models), models=tuple(models[:MODELS_LISTED]),
                                              window_seconds=window))

    def history(self, values: Values) -> float:
        return values["within"]
