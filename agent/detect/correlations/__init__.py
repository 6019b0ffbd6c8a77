"""The correlation registry: every kind a rule may name in `correlate:`, one module each, one interface
(base.Correlation). rules.py validates rules from it; the engine resolves and runs them; docs/rules.md
lists them (tests/test_docs.py checks it names every kind and parameter)."""

from __future__ import annotations

from weightwarden.agent.detect.correlations.base import Correlation, Parameter, Situation, Values, Verdict
from weightwarden.agent.detect.correlations.bulk_collection import BulkCollection
from weightwarden.agent.detect.correlations.copy import Copy
from weightwarden.agent.detect.correlations.egress_budget import EgressBudget
from weightwarden.agent.detect.correlations.lineage import Lineage
from weightwarden.agent.detect.correlations.serving_budget import ServingBudget
from weightwarden.agent.detect.correlations.staging import Staging
from weightwarden.agent.detect.correlations.transfer_tool import TransferTool

REGISTRY: tuple[Correlation, ...] = (EgressBudget(), BulkCollection(), TransferTool(), Staging(), Copy(), Lineage(),
                                     ServingBudget())
KINDS: dict[str, Correlation] = {correlation.kind: correlation for correlation in REGISTRY}


def correlation(kind: str | None) -> Correlation | None:
    return KINDS.get(kind) if kind is not None else None


def settings_keys() -> tuple[str, ...]:
    """The [detect] settings that override a parameter of some kind (DetectSettings.overrides' keys)."""
    return tuple(p.setting for c in REGISTRY for p in c.parameters if p.setting)


__all__ = ["KINDS", "REGISTRY", "Correlation", "Parameter", "Situation", "Values", "Verdict", "correlation",
           "settings_keys"]
