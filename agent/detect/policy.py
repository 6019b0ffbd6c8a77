"""The running agent's detection: rules from the package and the config, and the [detect] section.

The engine itself is pure (engine.py); this module does what it cannot: reads rule files, hashes
executables for allowlist entries with a SHA-256 (agent/executables.py: cached by device, inode, mtime and
size), hashes the installed transfer and staging tools so a renamed copy is still known, reads the canary
registry. It neither locks nor catches: the agent's dispatcher calls it from one thread and is the one
place that isolates a failure (docs/design.md).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from typing import Any

from weightwarden.agent.detect.copy import CopyCandidate
from weightwarden.agent.detect.correlations import settings_keys
from weightwarden.agent.detect.engine import CanarySource, DetectionEngine, DetectSettings
from weightwarden.agent.detect.rules import Allowlist, ProcessAllow, RuleSet, builtin_rule_files, load_rules
from weightwarden.agent.detect.transfer import STAGING_TOOLS, TRANSFER_TOOLS
from weightwarden.agent.events import Alert, Event, ProcessInfo
from weightwarden.agent.executables import ExecutableHashes

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


class InstalledTools:
    """SHA-256 -> tool name of the transfer and staging tools installed on this machine (found on the agent's
    PATH and the usual folders), hashed once on first use: a copy of /usr/bin/curl under any name is curl."""

    FOLDERS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/snap/bin")

    def __init__(self, hashes: ExecutableHashes | None = None, extra: Mapping[str, str] | None = None) -> None:
        self._hashes = hashes or ExecutableHashes()
        self._extra = {k.lower(): v for k, v in (extra or {}).items()}
        self._known: dict[str, str] | None = None

    def __call__(self) -> Mapping[str, str]:
        if self._known is None:
            known: dict[str, str] = {}
            path = os.pathsep.join([os.environ.get("PATH", ""), *self.FOLDERS])
            for name in (*TRANSFER_TOOLS, *STAGING_TOOLS):
                found = shutil.which(name, path=path)
                digest = self._hashes(os.path.realpath(found)) if found else None
                if digest is not None:
                    known.setdefault(digest, name)  # gzip and pigz may be one file: the first name stays
            known.update(self._extra)
            self._known = known
        return self._known


class Detector:
    """The engine as the agent runs it: rules from files and config, executable hashes, canaries.

    `process(event)` and `copy(candidate)` from the dispatcher's one thread; `read_models(process)` from
    any thread (a lookup in the engine's `reading_trees`, which is replaced, never changed in place).
    """

    def __init__(self, rules: RuleSet, settings: DetectSettings, canaries: CanarySource) -> None:
        for problem in rules.problems:
            log.error("detection rule problem: %s", problem)
        self.rules = rules
        hashes = ExecutableHashes()
        self.engine = DetectionEngine(rules, settings, canaries=canaries, exe_sha256=hashes,
                                      tool_hashes=InstalledTools(hashes))

    def process(self, event: Event) -> list[Alert]:
        return self.engine.process(event)

    def copy(self, candidate: CopyCandidate) -> Alert | None:
        return self.engine.copy(candidate)

    def read_models(self, process: ProcessInfo | None) -> bool:
        """Whether the process's tree read protected model bytes (the network sensor's live progress)."""
        return self.engine.tree_read_models(process)
