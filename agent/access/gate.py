"""The gate: the access sensor's answer to one waiting open of a protected model (issue 17, enforcement).

The access sensor holds every open of a marked file (FAN_OPEN_PERM) and asks `Gate.judge` what to answer.
The gate works out who opens (an `Opener`, read from /proc and kept per process image), what the open asks
for (read, write or both: agent/access/open_mode.py) and which model it is, and asks the `Decider`.

What the answer costs is what the opener waits: the process snapshot the sensor takes anyway, the opening
thread's system call, and a cached decision. An opener is read from /proc in full (its ids, executable
hash, script, parents, unit: about 400 µs) once per process image; it is read again when the process
execs, when its uid changes, or after `OPENER_SECONDS`.

The agent never opens a marked file from the sensor's thread: that open would wait on an answer only that
thread can give. Hashing an executable or a script that is itself a marked file (a llamafile is a model and
a program) is skipped (`marked`), and such an opener is judged without its hash.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from weightwarden.agent.access.decide import Decider, Decision, ModelRef, Opener, opener_of
from weightwarden.agent.access.open_mode import READ_WRITE, opening_access
from weightwarden.agent.executables import ExecutableHashes, FileIdentity
from weightwarden.agent.processes import ProcessSnapshot

OPENER_SECONDS = 5.0
OPENERS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    access: str  # read | write | read-write, as the open asked (read-write when it could not be told)
    access_known: bool
    opener: Opener | None  # None: the opener was gone before it could be read (its open fails or is moot)
    model: ModelRef

    @property
    def notable(self) -> bool:
        """Worth a record of its own: refused (enforced or not) or let in only by break-glass."""
        return not self.decision.allowed or self.decision.break_glass


class _GuardedHashes(ExecutableHashes):
    """Executable hashes that never open a marked file (see the module docstring)."""

    def __init__(self, marked: Callable[[int, int], bool]) -> None:
        super().__init__()
        self._marked = marked

    def identify(self, path: str) -> FileIdentity | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        if self._marked(st.st_dev, st.st_ino):
            return None
        return super().identify(path)


@dataclass
class Gate:
    decider: Decider
    model_of: Callable[[str, int, int], ModelRef]  # (path, device, inode): the model as the inventory names it
    marked: Callable[[int, int], bool]  # whether (device, inode) is a file the access sensor holds opens of
    clock: Callable[[], float] = time.monotonic
    _openers: dict[int, tuple[tuple[object, ...], float, Opener]] = field(default_factory=dict)
    hashes: ExecutableHashes = field(init=False)

    def __post_init__(self) -> None:
        self.hashes = _GuardedHashes(self.marked)

    def governs(self, path: str, device: int, inode: int) -> bool:
        """Whether any policy applies to this file (else its opens need no decision at all)."""
        model = self.model_of(path, device, inode)
        return self.decider.policies.current.applying(model.path, model.name) is not None

    def judge(self, pid: int, tid: int, path: str, device: int, inode: int,
              snap: ProcessSnapshot | None, execs: int) -> Verdict:
        """The answer for the open thread `tid` of process `pid` waits in. `snap` is the sensor's snapshot of the
        process taken just now, `execs` the process cache's exec count for it: with them, a known opener is
        recognised without reading /proc again."""
        model = self.model_of(path, device, inode)
        asked = opening_access(pid, tid)
        access = asked or READ_WRITE  # an open we cannot read is judged as the most it could ask for
        opener = self._opener(pid, snap, execs)
        if opener is None:
            # Gone while its open waited (killed): nothing will use the answer. Deny under enforcement: an
            # unknown opener is never let in.
            opener = Opener(pid, None, -1)
        decision = self.decider.decide(opener, model, access)
        return Verdict(decision, access, asked is not None, opener if opener.uid >= 0 else None, model)

    def _opener(self, pid: int, snap: ProcessSnapshot | None, execs: int) -> Opener | None:
        if snap is None:
            return None
        now = self.clock()
        image = (snap.start_ticks, snap.uid, snap.executable, snap.command_line, execs)
        known = self._openers.get(pid)
        if known is not None and known[0] == image and known[1] > now:
            return known[2]
        opener = opener_of(pid, self.hashes)
        if opener is None:
            self._openers.pop(pid, None)
            return None
        if len(self._openers) >= OPENERS_KEPT:
            self._openers.clear()
        self._openers[pid] = (image, now + OPENER_SECONDS, opener)
        return opener
