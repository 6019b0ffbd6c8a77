"""The running agent's detection: rules from the package and the config, and the [detect] section.

The engine itself is pure (engine.py); this module does what it cannot: reads rule files, hashes
executables for allowlist entries with a SHA-256 (cached by path, size and mtime), reads the canary
registry. It neither locks nor catches: the agent's dispatcher calls it from one thread and is the one
place that isolates a failure (docs/design.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from typing import Any

from weightwarden.agent.detect.copy import CopyCandidate
from weightwarden.agent.detect.correlations import settings_keys
from weightwarden.agent.detect.engine import CanarySource, DetectionEngine, DetectSettings
from weightwarden.agent.detect.rules import Allowlist, ProcessAllow, RuleSet, builtin_rule_files, load_rules
from weightwarden.agent.events import Alert, Event, ProcessInfo

log = logging.getLogger(__name__)


def settings_from_config(section: Any) -> DetectSettings:
    """DetectSettings from the config's [detect] section (agent/config.py DetectSection)."""
    processes = []
    for entry in section.allow_processes:
        path, _, digest = str(entry).partition("@sha256:")
        processes.append(ProcessAllow(path, digest.lower() or None))
    allow = Allowlist(tuple(processes), tuple(section.allow_users), tuple(section.allow_destinations),
                      tuple(section.allow_paths))
    # The settings that override correlation parameters (correlations/*.py Parameter.setting): None = unset,
    # so each rule's own value applies.
    overrides = {key: getattr(section, key) for key in settings_keys()}
    return DetectSettings(allow=allow, **overrides, disabled=tuple(section.disabled_rules))


def load_policy_rules(rule_paths: Iterable[str] = ()) -> RuleSet:
    return load_rules([*builtin_rule_files(), *rule_paths])


class ExecutableHashes:
    """SHA-256 of executables, for allowlist entries that pin one; cached by (path, size, mtime)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, int], str] = {}

    def __call__(self, path: str) -> str | None:
        try:
            info = os.stat(path)
            key = (path, info.st_size, info.st_mtime_ns)
            if key not in self._cache:
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                self._cache[key] = digest.hexdigest()
            return self._cache[key]
        except OSError:
            return None


class Detector:
    """The engine as the agent runs it: rules from files and config, executable hashes, canaries.

    `process(event)` and `copy(candidate)` from the dispatcher's one thread; `read_models(process)` from
    any thread (a lookup in the engine's `reading_trees`, which is replaced, never changed in place).
    """

    def __init__(self, rules: RuleSet, settings: DetectSettings, canaries: CanarySource) -> None:
        for problem in rules.problems:
            log.error("detection rule problem: %s", problem)
        self.rules = rules
        self.engine = DetectionEngine(rules, settings, canaries=canaries, exe_sha256=ExecutableHashes())

    def process(self, event: Event) -> list[Alert]:
        return self.engine.process(event)

    def copy(self, candidate: CopyCandidate) -> Alert | None:
        return self.engine.copy(candidate)

    def read_models(self, process: ProcessInfo | None) -> bool:
        """Whether the process's tree read protected model bytes (the network sensor's live progress)."""
        return self.engine.tree_read_models(process)
