"""What discovery puts on the ordered queue besides the models it finds (those travel as ScanFound with a
"discovery" Finder, so they are accepted exactly like any other find)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DiscoveryDone:
    """A discovery pass reached the end of its roots."""

    pass_number: int
    roots: tuple[str, ...]
    seen: frozenset[str]  # model files met in this pass (display paths); bounded by the models, not the files
    complete: bool  # walked from the first root's start in this run: inventoried files it did not meet are gone
    files: int
    models: int
    bytes_read: int
    cache_hits: int
    issues: int
    seconds: float
    not_covered: tuple[str, ...] = ()  # "path: reason" examples: unreadable folders, skipped filesystems
