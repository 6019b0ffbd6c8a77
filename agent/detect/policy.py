"""The running agent's detection: rules from the package and the config, the [detect] section, the locks.

The engine itself is pure (engine.py); this module does what it cannot: reads rule files, hashes
executables for allowlist entries with a SHA-256 (cached by path, size and mtime), reads the canary
registry, serialises calls from the sensor threads, and never lets a failing rule stop the agent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from weightwarden.agent.detect.copy import CopyCandidate, detect_copy, detect_derived_copy
from weightwarden.agent.detect.engine import DetectionEngine, DetectSettings
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
    return DetectSettings(allow=allow, egress_ratio=float(section.egress_ratio), bulk_models=int(section.bulk_models),
                          bulk_window=float(section.bulk_window_seconds), disabled=tuple(section.disabled_rules))


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
    """Thread-safe front of the engine for the agent: `process(event)` and `adjust_copy(alert)`."""

    def __init__(self, rules: RuleSet, settings: DetectSettings, canaries: Callable[[], Iterable[str]]) -> None:
        for problem in rules.problems:
            log.error("detection rule problem: %s", problem)
        self.rules = rules
        self.engine = DetectionEngine(rules, settings, canaries=canaries, exe_sha256=ExecutableHashes())
        self._lock = threading.Lock()
        self.errors = 0

    def process(self, event: Event) -> list[Alert]:
        try:
            with self._lock:
                return self.engine.process(event)
        except Exception:
            self.errors += 1
            log.exception("detection failed on %s", event.id)
            return []

    def read_models(self, process: ProcessInfo | None) -> bool:
        """Whether the process's tree read protected model bytes (the network sensor's live progress)."""
        try:
            with self._lock:
                return self.engine.tree_read_models(process)
        except Exception:
            self.errors += 1
            log.exception("tree lookup failed")
            return False

    def copy(self, candidate: CopyCandidate) -> Alert | None:
        alert = detect_copy(candidate.new, list(candidate.sources), candidate.destination_kind) or \
            detect_derived_copy(candidate.new, list(candidate.derived), candidate.destination_kind)
        return self.adjust_copy(alert) if alert is not None else None

    def adjust_copy(self, alert: Alert) -> Alert:
        try:
            with self._lock:
                return self.engine.adjust_copy(alert)
        except Exception:
            self.errors += 1
            log.exception("copy severity failed on %s", alert.id)
            return alert
