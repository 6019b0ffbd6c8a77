"""What the engine remembers per process tree: the counts the correlations and sequence rules decide on.

Counted for every tree, whatever rules are loaded (the network sensor asks whether a tree read a model):
protected bytes read per file, each file's size and model, recent model reads (time, model), bytes sent
per connection; plus the progress of each sequence rule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from weightwarden.agent.alert_evidence import SequenceStep
from weightwarden.agent.detect.serving_volume import PeerVolume


@dataclass
class TreeState:
    last: float = 0.0  # the time of its latest event
    read: dict[str, int] = field(default_factory=dict)  # protected path -> bytes read (max seen)
    sizes: dict[str, int] = field(default_factory=dict)  # protected path -> file size
    models: dict[str, str] = field(default_factory=dict)  # protected path -> model
    reads: deque[tuple[float, str]] = field(default_factory=deque)  # (time, model) of each read, recent ones
    sent: dict[str, tuple[str, int]] = field(default_factory=dict)  # connection -> (address, bytes sent)
    # a model server of this tree: "server key>peer" -> what that remote peer asked of it (serving-traffic)
    serving: dict[str, PeerVolume] = field(default_factory=dict)
    # sequence rule -> (index of the next step, start time, the steps matched so far)
    steps: dict[str, tuple[int, float, tuple[SequenceStep, ...]]] = field(default_factory=dict)

    def only_model(self) -> str | None:
        """The model this tree touched, when it touched exactly one."""
        models = set(self.models.values())
        return next(iter(models)) if len(models) == 1 else None
