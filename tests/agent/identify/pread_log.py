"""Count what os.pread is asked for: the requested length is what gets allocated, so that is the budget."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PreadLog:
    calls: list[tuple[int, int]] = field(default_factory=list)  # (offset, requested length)

    @property
    def requested(self) -> int:
        return sum(length for _, length in self.calls)
