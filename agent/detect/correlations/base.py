"""The interface of a correlation kind: its parameters, what it counts, how it decides.

A rule names one kind (`correlate: {kind: egress-budget, ratio: 0.5}`). The kind declares its parameters
(`Parameter`: type, default, limits, and the [detect] setting that overrides it when set); rules.py
validates a rule's `correlate:` mapping from those declarations, and the engine resolves each parameter
once per rule (`resolve`): the [detect] setting when it is set, else the rule's own value, else the
default. On each event the rule's condition matched, the engine asks the kind to `decide`: a `Verdict`
(the alert's typed evidence, destination, progress) or None (nothing to raise yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from weightwarden.agent.alert_evidence import AlertEvidence
from weightwarden.agent.detect.durations import parse_duration
from weightwarden.agent.detect.state import TreeState
from weightwarden.agent.detect.transfer import Staging, Transfer
from weightwarden.agent.events import Destination, Event

if TYPE_CHECKING:  # rules.py validates rules from this registry: it imports us, not the other way round
    from weightwarden.agent.detect.rules import Allowlist

Values = Mapping[str, float]  # a rule's resolved parameters: name -> value (int-valued ones are whole)


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a correlation kind, as a rule's `correlate:` mapping gives it."""

    name: str
    type: Literal["number", "integer", "duration"]  # duration: 90, "90s", "10m", "2h" -> seconds
    default: float
    doc: str  # what it means, for problems and docs/rules.md
    low: float = 0.0
    low_exclusive: bool = False  # `above low` rather than `at least low`
    high: float | None = None
    setting: str | None = None  # the [detect] key that overrides every rule's value when it is set

    def read(self, raw: object) -> tuple[float | None, str | None]:
        """The value a rule gave, in this parameter's unit, or None and what is wrong with it."""
        value: float | None
        if isinstance(raw, bool):
            value = None
        elif self.type == "duration":
            value = parse_duration(raw)
        elif self.type == "integer":
            value = float(raw) if isinstance(raw, int) else None
        else:
            value = float(raw) if isinstance(raw, int | float) else None
        if value is None:
            return None, f"{self.name} must be {_TYPE_TEXT[self.type]}, got {raw!r}"
        if value < self.low or (self.low_exclusive and value == self.low):
            bound = "above" if self.low_exclusive else "at least"
            return None, f"{self.name} must be {bound} {_number(self.low)} ({self.doc}), got {raw!r}"
        if self.high is not None and value > self.high:
            return None, f"{self.name} must be at most {_number(self.high)} ({self.doc}), got {raw!r}"
        return (float(int(value)) if self.type == "integer" else value), None

    def describe(self) -> str:
        """`ratio` (number above 0, at most 10; default 0.5; [detect] egress_ratio overrides when set)."""
        bound = f"above {_number(self.low)}" if self.low_exclusive else f"at least {_number(self.low)}"
        if self.high is not None:
            bound += f", at most {_number(self.high)}"
        default = _number(self.default) + ("s" if self.type == "duration" else "")
        override = f"; `[detect] {self.setting}` overrides it when set" if self.setting else ""
        return f"`{self.name}` ({_TYPE_TEXT[self.type]} {bound}; default {default}{override}): {self.doc}"


_TYPE_TEXT = {"number": "a number", "integer": "a whole number", "duration": "a duration like 90s, 10m or 2h"}


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


class Situation(NamedTuple):
    """What a correlation sees when a rule's condition matched an event (a tuple: built per decision, cheaply)."""

    event: Event
    fields: Mapping[str, Any]  # the event's condition fields (detect/fields.py), with transfer.* / staging.*
    tree: TreeState  # the counts of the event's process tree
    now: float  # the event's time, seconds since the epoch
    allow: Allowlist  # the rule's allowlist merged with [detect]'s
    transfer: Transfer | None = None  # the transfer the process's command line asks for
    staging: Staging | None = None  # what the process's command line archives, compresses, encrypts or splits


@dataclass(frozen=True, slots=True)
class Verdict:
    """Raise (or update) the rule's incident, with this kind's evidence."""

    evidence: AlertEvidence  # this kind's evidence; the engine fills in the shared part
    destination: Destination | None = None
    progress: float | None = None  # 0..1: the incident is updated at each further quarter
    detail: str = ""  # appended to the alert's message
    subject: str | None = None  # the incident's subject when not the model (one per server and peer)


class Correlation:
    """One kind of correlation. Subclasses set the class attributes and implement `decide`."""

    kind: ClassVar[str]
    counts: ClassVar[str]  # what it counts, in a sentence (docs/rules.md)
    decides: ClassVar[str]  # how it decides, in a sentence (docs/rules.md)
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    on_events: ClassVar[bool] = True  # False: not fed events (model-copy is fed fingerprint matches)
    tree_wide: ClassVar[bool] = False  # one incident per process tree, whichever model the event names
    takes_severity_by_destination: ClassVar[bool] = False  # a rule's severity_by_destination applies

    def decide(self, situation: Situation, values: Values) -> Verdict | None:
        return None

    def history(self, values: Values) -> float:
        """Seconds of per-tree model reads (TreeState.reads) this kind needs kept."""
        return 0.0

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def resolve(self, given: Mapping[str, float], settings: Mapping[str, float | None]) -> dict[str, float]:
        """Each parameter's value for one rule: the [detect] setting when set, else the rule's, else the default."""
        values: dict[str, float] = {}
        for parameter in self.parameters:
            override = settings.get(parameter.setting) if parameter.setting else None
            if override is not None:
                values[parameter.name] = float(override)
            elif parameter.name in given:
                values[parameter.name] = float(given[parameter.name])
            else:
                values[parameter.name] = parameter.default
        return values
