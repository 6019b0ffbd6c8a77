"""What one remote peer asked of one model server over time: cumulative samples (answer bytes, connections)
from `serving-traffic` events, kept so a rule can ask "how much in the last hour / day / burst window".

Two resolutions keep memory bounded whatever the event rate: every sample of the last FINE_SECONDS, and one
sample a minute for a day. A peer's volume in a window is its latest count less the count of the latest
sample at or before the window's start (none: everything since the agent first saw the peer).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

FINE_SECONDS = 600.0
COARSE_STEP = 60.0
DAY = 86400.0

Sample = tuple[float, int, int]  # time, answer bytes, connections (cumulative)


@dataclass
class PeerVolume:
    fine: deque[Sample] = field(default_factory=deque)
    coarse: deque[Sample] = field(default_factory=deque)

    def add(self, now: float, answer_bytes: int, connections: int) -> None:
        sample = (now, answer_bytes, connections)
        self.fine.append(sample)
        while len(self.fine) > 1 and now - self.fine[1][0] > FINE_SECONDS:
            self.fine.popleft()
        if not self.coarse or now - self.coarse[-1][0] >= COARSE_STEP:
            self.coarse.append(sample)
        while len(self.coarse) > 1 and now - self.coarse[1][0] > DAY:
            self.coarse.popleft()

    def latest(self) -> Sample:
        return self.fine[-1] if self.fine else (0.0, 0, 0)

    def within(self, now: float, seconds: float) -> tuple[int, int]:
        """(answer bytes, connections) in the last `seconds`."""
        _, answer, connections = self.latest()
        samples = self.fine if seconds <= FINE_SECONDS else self.coarse
        start = now - seconds
        base = (0.0, 0, 0)
        for sample in samples:
            if sample[0] > start:
                break
            base = sample
        return answer - base[1], connections - base[2]
