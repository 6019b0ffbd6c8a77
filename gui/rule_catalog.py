"""The detection rules in effect, for what the app says about an alert's rule (title, description, ids).

The same rules the agent runs: the built-in ones plus the config's [detect] rule_paths, read by the
agent's rule loader (agent/detect/policy.py load_policy_rules). Loaded once per set of paths.
"""

from __future__ import annotations

from functools import lru_cache

from weightwarden.agent.config import Config
from weightwarden.agent.detect.policy import load_policy_rules
from weightwarden.agent.detect.rules import RuleSet


def rules_in_effect(config: Config | None = None) -> RuleSet:
    return _loaded(tuple(config.detect.rule_paths) if config is not None else ())


@lru_cache(maxsize=4)
def _loaded(rule_paths: tuple[str, ...]) -> RuleSet:
    return load_policy_rules(rule_paths)
