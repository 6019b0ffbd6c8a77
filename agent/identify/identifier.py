"""Identify model files by content: YARA candidates from a bounded window, then structural checks."""

from __future__ import annotations

import os
from typing import Any

from weightwarden.agent.fingerprint.layouts.budget import OverBudget
from weightwarden.agent.fingerprint.tensors import TensorPlan
from weightwarden.agent.identify.checks import CHECKS, PLAN_KEY, SIBLING_CONFIRMATIONS, Check
from weightwarden.agent.identify.companions import identify_companion
from weightwarden.agent.identify.identification import Identification
from weightwarden.agent.identify.sealed_check import PRINTS_KEY
from weightwarden.agent.identify.window import DEFAULT_TAIL_BYTES, DEFAULT_WINDOW_BYTES, Window, read_window
from weightwarden.agent.identify.yara_rules import FormatRules, load_format_rules
from weightwarden.agent.safe_open import open_regular


class Identifier:
    """Thread-safe: holds only immutable configuration and the compiled rules, shared by all calls."""

    def __init__(self, window_bytes: int = DEFAULT_WINDOW_BYTES, tail_bytes: int = DEFAULT_TAIL_BYTES,
                 *, rules: FormatRules | None = None) -> None:
        if window_bytes < 64 or tail_bytes < 0:
            raise ValueError("window_bytes must be >= 64 and tail_bytes >= 0")
        self.window_bytes = window_bytes
        self.tail_bytes = tail_bytes
        self._rules = rules if rules is not None else load_format_rules()

    def identify_path(self, path: str | bytes, *, companions: bool = True) -> Identification | None:
        """Identify the regular file at `path` without following symlinks or blocking on FIFOs.

        Raises NotRegularFile for FIFOs, devices, directories and symlinks, and OSError when the file
        cannot be opened or read; the caller (the scanner) reports those.
        """
        fd, info = open_regular(path)
        try:
            return self.identify_fd(fd, info.st_size, path, companions=companions)
        finally:
            os.close(fd)

    def identify_fd(self, fd: int, size: int, path: str | bytes | None = None, *,
                    companions: bool = True) -> Identification | None:
        """Identify an open regular file of `size` bytes (from fstat). Reads only the bounded window.

        With the file's `path`, the files beside it take part: they confirm formats whose content is
        shared with look-alikes (checks.SIBLING_CONFIRMATIONS), and a file with no signature of its own is
        identified through the model file that names it (companions.py). Without a path, neither happens.
        """
        if size <= 0:
            return None  # holds no weights, whatever lies beside it
        where = os.fsdecode(path) if path is not None else None
        window = read_window(fd, size, self.window_bytes, self.tail_bytes)
        candidates = self._rules.match(window.scan_bytes, size)
        found = self._confirm(fd, size, window, candidates, where)
        if companions and where is not None and (found is None or not found.confirmed):
            return identify_companion(where, self._identify_primary) or found
        return found

    def _identify_primary(self, path: str) -> Identification | None:
        """A companion's model file: identified by content (and siblings), never as a companion itself."""
        return self.identify_path(path, companions=False)

    def _confirm(self, fd: int, size: int, window: Window, candidates: list[str],
                 path: str | None) -> Identification | None:
        tried: set[Check] = set()
        unchecked: str | None = None
        over_budget: Identification | None = None
        for candidate in candidates:
            check = CHECKS.get(candidate)
            if check is None:
                # A rule without a structural check yet: remember it as a weak result.
                unchecked = unchecked or candidate
                continue
            if check in tried:
                continue  # a family check already ran for an earlier candidate of the same family
            tried.add(check)
            try:
                details: dict[str, Any] | None = check(fd, size, window.head, window.tail)
            except OverBudget as error:
                # Too big to parse within the budget: still a model file to hash and report, unconfirmed,
                # unless a later candidate confirms it.
                reason = str(error)
                over_budget = over_budget or Identification(candidate, False, {"over_budget": reason},
                                                            TensorPlan(skipped=reason))
                continue
            if details is None:
                continue
            format_id = details.pop("format", candidate)
            plan = details.pop(PLAN_KEY, None)
            prints = details.pop(PRINTS_KEY, ())
            confirm = SIBLING_CONFIRMATIONS.get(format_id)
            if confirm is not None:
                details = confirm(path, details)
                if details is None:
                    continue
            return Identification(format=format_id, confirmed=True, details=details,
                                  tensor_plan=plan if isinstance(plan, TensorPlan) else None, prints=prints)
        if over_budget is not None:
            return over_budget
        if unchecked is not None:
            return Identification(format=unchecked, confirmed=False, details={})
        return None
