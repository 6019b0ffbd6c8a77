"""The access decision: may this opener open this model for this access? Pure over its inputs, and cached.

Rules, in order (the first that applies answers):
1. The agent's own process is always allowed (it hashes and fingerprints models).
2. No policy applies to the model: allowed ("no policy").
3. An `allow` entry of the governing policy matches the opener (policy.py says how): allowed.
4. An active (unexpired) grant for the opener's uid, the model and the program: allowed. Expiry is judged
   now, at decision time; a cached allow never outlives its grant.
5. Root while break-glass is open (`weightwarden access break-glass`): allowed, with break_glass=True so the
   caller records every such open.
6. Otherwise denied. In a `monitor` policy the denial is only reported: `enforced` is False and `permit` True.

`decide(opener, model, access)` on `Decider` is what the fanotify permission path calls; `opener_of(pid)`
reads the opener from /proc the way the agent does (agent/processes.py, agent/executables.py).
"""

from __future__ import annotations

import grp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from weightwarden.agent.access.grants import BreakGlass, Grant, GrantBook
from weightwarden.agent.access.policy import AccessPolicies, AllowEntry, Policy, ProgramMatch, glob_match
from weightwarden.agent.executables import ExecutableHashes, identify_process
from weightwarden.agent.processes import MAX_PARENT_DEPTH, snapshot, user_name


@dataclass(frozen=True, slots=True)
class Opener:
    """Who opens: read from /proc/PID (opener_of) when the permission event arrives."""

    pid: int
    start_ticks: int | None
    uid: int
    gids: tuple[int, ...] = ()
    user: str | None = None
    executable: str | None = None
    executable_sha256: str | None = None
    interpreter: str | None = None
    script: str | None = None
    script_sha256: str | None = None
    parents: tuple[str, ...] = ()  # the ancestors' executables, parent first
    unit: str | None = None  # the systemd unit from /proc/PID/cgroup


@dataclass(frozen=True, slots=True)
class ModelRef:
    path: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool  # what the policy says
    enforced: bool  # False: a denial is only reported (monitor), the open goes ahead
    policy_id: str | None
    reason: str  # the rule that matched, or why none did
    grant_id: str | None = None
    break_glass: bool = False
    own: bool = False

    @property
    def permit(self) -> bool:
        """The answer to give the kernel."""
        return self.allowed or not self.enforced


@dataclass
class Decider:
    policies: AccessPolicies
    grants: GrantBook | None = None
    break_glass: BreakGlass | None = None
    agent_pid: int = field(default_factory=os.getpid)
    ttl: float = 5.0
    clock: Callable[[], float] = time.time
    _cache: dict[tuple[Opener, ModelRef, str], tuple[float, Decision]] = field(default_factory=dict)
    _state: tuple[object, ...] = ()
    limit: int = 65536

    def decide(self, opener: Opener, model: ModelRef, access: str) -> Decision:
        """The decision for one open; cached by (opener, model, access) for `ttl` seconds."""
        now = self.clock()
        # A reload, a new or revoked grant, or break-glass opened changes answers: drop what is cached. The
        # grants and break-glass files cost one stat each per decision (their contents are re-read on change).
        state = (self.policies.generation, self.grants.stamp() if self.grants else None,
                 self.break_glass.stamp() if self.break_glass else None)
        if state != self._state:
            self._cache.clear()
            self._state = state
        # The whole opener is the key: pid and start time, ids, executable identity, script, parents, unit; a
        # process that changes any of them (setuid, exec, reparenting) is decided again.
        key = (opener, model, access)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        decision, until = self._decide(opener, model, access, now)
        if len(self._cache) >= self.limit:
            self._cache.clear()
        if not decision.break_glass:  # each break-glass open is decided (and recorded) afresh
            self._cache[key] = (min(now + self.ttl, until), decision)
        return decision

    def _decide(self, opener: Opener, model: ModelRef, access: str, now: float) -> tuple[Decision, float]:
        forever = now + self.ttl
        if opener.pid == self.agent_pid:
            return Decision(True, False, None, "the agent's own process", own=True), forever
        policy = self.policies.current.applying(model.path, model.name)
        if policy is None:
            return Decision(True, False, None, "no policy applies to this model"), forever
        enforced = policy.mode == "enforce"
        for index, entry in enumerate(policy.allow):
            if entry.covers(access) and entry_matches(entry, opener):
                return Decision(True, enforced, policy.id,
                                f"allow[{index}] of {policy.id} ({policy.path}:{entry.line})"), forever
        grant = self._grant(opener, model, now)
        if grant is not None:
            return (Decision(True, enforced, policy.id, f"grant {grant.id} until {grant.expires_at:.0f}",
                             grant_id=grant.id), grant.expires_at)
        if opener.uid == 0 and self.break_glass is not None and self.break_glass.open_until() > now:
            return Decision(True, enforced, policy.id, "root under break-glass", break_glass=True), now
        return Decision(False, enforced, policy.id, _why_not(policy, access)), forever

    def _grant(self, opener: Opener, model: ModelRef, now: float) -> Grant | None:
        if self.grants is None:
            return None
        return next((g for g in self.grants.active(now) if g.covers(opener.uid, model.path, model.name,
                                                                      opener.executable, opener.executable_sha256)),
                    None)


def _why_not(policy: Policy, access: str) -> str:
    if not any(entry.covers(access) for entry in policy.allow):
        return f"{policy.id} allows no {access} access ({policy.path}:{policy.line})"
    return f"no allow entry of {policy.id} matches this user and program, and no grant ({policy.path}:{policy.line})"


def entry_matches(entry: AllowEntry, opener: Opener) -> bool:
    """Every key the entry gives matches (users or groups: either one)."""
    if entry.users or entry.groups:
        in_users = opener.user is not None and opener.user in entry.users
        if not in_users and not (entry.groups and _in_groups(entry.groups, opener.gids)):
            return False
    if entry.programs and not any(program_matches(p, opener) for p in entry.programs):
        return False
    if entry.parents and not any(glob_match(glob)(exe) for exe in opener.parents for glob in entry.parents):
        return False
    return not entry.services or (opener.unit is not None
                                  and any(glob_match(glob)(opener.unit) for glob in entry.services))


def _in_groups(names: tuple[str, ...], gids: tuple[int, ...]) -> bool:
    for name in names:
        try:
            if grp.getgrnam(name).gr_gid in gids:
                return True
        except KeyError:
            continue
    return False


def program_matches(program: ProgramMatch, opener: Opener) -> bool:
    """Every field the program entry gives must match (path AND content when both are given)."""
    if program.executable is not None and not (opener.executable and
                                               glob_match(program.executable)(opener.executable)):
        return False
    if program.sha256 is not None and opener.executable_sha256 != program.sha256:
        return False
    if program.interpreter is not None and opener.interpreter != program.interpreter:
        return False
    if program.script is not None and not (opener.script and glob_match(program.script)(opener.script)):
        return False
    return program.script_sha256 is None or opener.script_sha256 == program.script_sha256


# ------------------------------------------------------------------------------------------ from /proc


def systemd_unit(pid: int) -> str | None:
    """The unit of a process from /proc/PID/cgroup (cgroup v2 `0::/system.slice/x.service`), or None."""
    try:
        with open(f"/proc/{pid}/cgroup", "rb") as handle:
            text = handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith((".service", ".scope")):
                return part
    return None


def _ids(pid: int) -> tuple[int, tuple[int, ...]]:
    uid, gids = -1, []
    with open(f"/proc/{pid}/status", "rb") as handle:
        for line in handle.read(8192).splitlines():
            if line.startswith(b"Uid:"):
                uid = int(line.split()[1])
            elif line.startswith(b"Gid:"):
                gids.append(int(line.split()[1]))
            elif line.startswith(b"Groups:"):
                gids.extend(int(g) for g in line.split()[1:])
    return uid, tuple(dict.fromkeys(gids))


def opener_of(pid: int, hashes: ExecutableHashes) -> Opener | None:
    """Read who `pid` is from /proc now (None when it is gone): ids, executable identity, script, parents."""
    snap = snapshot(pid)
    if snap is None:
        return None
    try:
        uid, gids = _ids(pid)
    except OSError:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode("utf-8", "surrogateescape") for a in handle.read(65536).rstrip(b"\0").split(b"\0") if a]
    except OSError:
        argv = []
    try:
        cwd: str | None = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = None
    identity = identify_process(hashes, pid, snap.executable, argv, cwd)
    script_sha256 = hashes(identity.script) if identity.script else None
    parents: list[str] = []
    ppid = snap.ppid
    while ppid and len(parents) < MAX_PARENT_DEPTH:
        parent = snapshot(ppid)
        if parent is None:
            break
        if parent.executable:
            parents.append(parent.executable)
        ppid = parent.ppid
    return Opener(pid, snap.start_ticks, uid, gids, user_name(uid), snap.executable, identity.executable_sha256,
                  identity.interpreter, identity.script, script_sha256, tuple(parents), systemd_unit(pid))
