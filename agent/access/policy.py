"""Access policy as data: who may open which model with which program. YAML, one policy per document:

    id: llama-weights                  # lowercase letters, digits and dashes; unique over all files
    applies_to:
      models: [llama-3-8b]             # model names as the inventory names them (globs allowed)
      paths: [/srv/models/llama/**]    # and/or paths (fnmatch globs; `*` also crosses `/`)
    mode: enforce                      # monitor (default: would-deny is only reported) | enforce
    allow:                             # any one entry that matches allows
      - users: [ana]                   # account names; an entry matches a user in users OR a member of groups
        groups: [ml]
        programs:                      # any one matches; the rule for a program is below
          - {executable: /usr/bin/python3*, sha256: <64 hex>}
          - {interpreter: python, script: /srv/train/*.py, script_sha256: <64 hex>}
        parents: [/usr/bin/jupyter*]   # any ancestor's executable (glob)
        services: [train@*.service]    # the systemd unit from /proc/PID/cgroup (glob)
        access: read                   # read | write | read-write (default read)

Matching an `allow` entry: every key given must match; a key left out matches anything.
A program entry: every field it gives must match. `executable` is the path of /proc/PID/exe and `sha256` the
content of that very file: given both, a copy of the allowed binary elsewhere (same sha256, other path) is
refused, and so is another binary put at the allowed path (same path, other sha256). Give only `sha256` to
allow the content wherever it lies, only `executable` to allow the path whatever it holds. `interpreter`
(python | shell | perl) with `script` / `script_sha256` match the script an interpreter runs.

Overlap: when several policies apply to one model, the most specific wins: one that names the model (models)
beats one that matches its path, and among path globs the one with the longest text before its first
wildcard wins. Two policies naming the same model or the same path glob are a load problem (in the file of
the second), since neither would be more specific.

Files: the package's weightwarden.rules/access/*.yml, then /etc/weightwarden/access.d/*.yml. A file with any
problem is refused whole, every problem listed; `AccessPolicies.reload` keeps that file's previous policies.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from weightwarden.agent.detect.rules import rule_files
from weightwarden.agent.located.problem import Problem, Problems
from weightwarden.agent.located.yaml_reader import line_of, read_documents

SYSTEM_DIR = "/etc/weightwarden/access.d"
# Moves SYSTEM_DIR, as WEIGHTWARDEN_CONFIG moves the config file: tests run the service as installed with
# their own policies, never touching the machine's /etc.
SYSTEM_DIR_ENV = "WEIGHTWARDEN_ACCESS_DIR"
POLICY_KEYS = ("id", "applies_to", "mode", "allow", "description")
APPLIES_KEYS = ("models", "paths")
ALLOW_KEYS = ("users", "groups", "programs", "parents", "services", "access")
PROGRAM_KEYS = ("executable", "sha256", "interpreter", "script", "script_sha256")
MODES = ("monitor", "enforce")
ACCESSES = ("read", "write", "read-write")
INTERPRETERS = ("python", "shell", "perl")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class ProgramMatch:
    executable: str | None = None  # glob over /proc/PID/exe
    sha256: str | None = None  # of the executable
    interpreter: str | None = None
    script: str | None = None  # glob over the script's absolute path
    script_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class AllowEntry:
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    programs: tuple[ProgramMatch, ...] = ()
    parents: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    access: str = "read"
    line: int = 0

    def covers(self, access: str) -> bool:
        return self.access == "read-write" or self.access == access


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    models: tuple[str, ...]
    paths: tuple[str, ...]
    mode: str
    allow: tuple[AllowEntry, ...]
    path: str = ""
    line: int = 0

    def specificity(self, model_path: str, model_name: str | None) -> tuple[int, int] | None:
        """How closely this policy names the model: (2, len) by name, (1, literal prefix) by path, or None."""
        if model_name is not None and any(glob_match(m)(model_name) for m in self.models):
            return (2, max(len(_literal(m)) for m in self.models if glob_match(m)(model_name)))
        matched = [p for p in self.paths if glob_match(p)(model_path)]
        if matched:
            return (1, max(len(_literal(p)) for p in matched))
        return None


@functools.cache
def glob_match(pattern: str) -> Callable[[str], bool]:
    """fnmatchcase for one pattern, compiled once (fnmatch's own cache holds 256: a big policy thrashes it)."""
    compiled = re.compile(fnmatch.translate(pattern)).match
    return lambda text: compiled(text) is not None


def _has_wildcard(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _literal(pattern: str) -> str:
    cut = min((i for i, ch in enumerate(pattern) if ch in "*?["), default=len(pattern))
    return pattern[:cut]


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: tuple[Policy, ...]
    problems: tuple[Problem, ...]
    files: tuple[str, ...] = ()
    # model name -> the policy naming it without a wildcard (the common case, one dict lookup); the rest
    _by_name: dict[str, Policy] = field(init=False, compare=False, repr=False)
    _globbing: tuple[Policy, ...] = field(init=False, compare=False, repr=False)  # wildcard model names
    _by_path: tuple[Policy, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_name = {m: p for p in self.policies for m in p.models if not _has_wildcard(m)}
        object.__setattr__(self, "_by_name", by_name)
        globbing = tuple(p for p in self.policies if any(_has_wildcard(m) for m in p.models))
        object.__setattr__(self, "_globbing", globbing)
        object.__setattr__(self, "_by_path", tuple(p for p in self.policies if p.paths))

    def get(self, policy_id: str) -> Policy | None:
        return next((p for p in self.policies if p.id == policy_id), None)

    def applying(self, model_path: str, model_name: str | None) -> Policy | None:
        """The one policy that governs this model (the overlap rule in the module docstring), or None."""
        best: tuple[tuple[int, int], Policy] | None = None
        named = self._by_name.get(model_name) if model_name is not None else None
        if named is not None:
            best = (named.specificity(model_path, model_name) or (2, 0), named)
        # a policy naming the model beats every path glob: those are only looked at when none names it
        candidates = self._globbing if named is not None else self._globbing + self._by_path
        for policy in candidates:
            rank = policy.specificity(model_path, model_name)
            if rank is not None and (best is None or rank > best[0]):
                best = (rank, policy)
        return best[1] if best else None


def builtin_policy_files() -> list[str]:
    folder = resources.files("weightwarden.rules") / "access"
    return sorted(str(item) for item in folder.iterdir() if item.name.endswith((".yml", ".yaml")))


def policy_files(paths: Iterable[str] | None = None) -> list[str]:
    """The files named or found (one level) in `paths`, as detection rule files are; by default the
    package's then /etc's."""
    if paths is None:
        system = os.environ.get(SYSTEM_DIR_ENV) or SYSTEM_DIR
        return builtin_policy_files() + rule_files([system] if os.path.isdir(system) else [])
    return rule_files(paths)


def load_policies(paths: Iterable[str] | None = None, previous: PolicySet | None = None) -> PolicySet:
    """Every policy of the files and every problem, in one pass. A file with a problem gives none of its own
    policies; those it gave in `previous` (the policy in force) stay."""
    files = policy_files(paths)
    policies: list[Policy] = []
    problems: list[Problem] = []
    for path in files:
        found: list[Problem] = []
        loaded = _load_file(path, found)
        _check_against(loaded, policies, path, found)
        if found:
            problems.extend(found)
            if previous is not None:
                policies.extend(p for p in previous.policies if p.path == path)
        else:
            policies.extend(loaded)
    return PolicySet(tuple(policies), tuple(problems), tuple(files))


def _check_against(loaded: Sequence[Policy], earlier: Sequence[Policy], path: str, found: list[Problem]) -> None:
    """Duplicate ids and overlaps that no specificity settles, against the policies before (and in) this file."""
    seen = list(earlier)
    for policy in loaded:
        out = Problems(path, f"policy {policy.id}", found)
        for other in seen:
            where = f"{other.path}:{other.line}"
            if other.id == policy.id:
                out.add(policy.line, f"duplicate policy id (first at {where})")
            for model in set(policy.models) & set(other.models):
                out.add(policy.line, f"model {model!r} is also named by policy {other.id} ({where}); "
                                     "neither is more specific")
            for glob in set(policy.paths) & set(other.paths):
                out.add(policy.line, f"path {glob!r} is also matched by policy {other.id} ({where}); "
                                     "neither is more specific")
        seen.append(policy)


def _load_file(path: str, problems: list[Problem]) -> list[Policy]:
    documents = read_documents(path, problems, "policies")
    return [p for p in (_policy(path, d, problems) for d in documents) if p is not None]


def _policy(path: str, raw: Any, problems: list[Problem]) -> Policy | None:
    if not isinstance(raw, Mapping):
        Problems(path, None, problems).add(line_of(raw), "a policy must be a mapping (id, applies_to, mode, allow)")
        return None
    policy_id = raw.get("id")
    out = Problems(path, f"policy {policy_id}" if isinstance(policy_id, str) else None, problems)
    for key in raw:
        if key not in POLICY_KEYS:
            out.add(line_of(raw, key), f"unknown key {key!r} (known: {', '.join(POLICY_KEYS)})")
    for key in ("id", "applies_to", "allow"):
        if key not in raw:
            out.add(line_of(raw), f"missing required key {key!r}")
    if "id" in raw and (not isinstance(policy_id, str) or not _ID.match(policy_id)):
        out.add(line_of(raw, "id"), f"id {policy_id!r} must be lowercase letters, digits and dashes")
    if not isinstance(raw.get("description", ""), str):
        out.add(line_of(raw, "description"), "description must be text")
    mode = raw.get("mode", "monitor")
    if mode not in MODES:
        out.add(line_of(raw, "mode"), f"unknown mode {mode!r} (one of: {', '.join(MODES)})")
    models: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    applies = raw.get("applies_to")
    if "applies_to" in raw:
        if not isinstance(applies, Mapping):
            out.add(line_of(raw, "applies_to"), "applies_to must be a mapping with models and/or paths")
        else:
            for key in applies:
                if key not in APPLIES_KEYS:
                    out.add(line_of(applies, key), f"unknown applies_to key {key!r} (known: models, paths)")
            models = _texts(applies, "models", "applies_to.models", out)
            paths = _texts(applies, "paths", "applies_to.paths", out)
            for index, glob in enumerate(paths):
                if not glob.startswith("/"):
                    out.add(line_of(applies["paths"], index), f"applies_to.paths: {glob!r} must be an absolute path")
    entries: list[AllowEntry] = []
    allow = raw.get("allow")
    if "allow" in raw:
        if not isinstance(allow, list):
            out.add(line_of(raw, "allow"), "allow must be a list of entries (users, groups, programs, ...)")
        else:
            for index, item in enumerate(allow):
                entry = _entry(item, line_of(allow, index), out)
                if entry is not None:
                    entries.append(entry)
    if out.count:
        return None
    assert isinstance(policy_id, str)
    return Policy(policy_id, models, paths, str(mode), tuple(entries), path, line_of(raw))


def _texts(raw: Mapping[str, Any], key: str, name: str, out: Problems) -> tuple[str, ...]:
    if key not in raw:
        return ()
    value = raw[key]
    if not isinstance(value, list):
        out.add(line_of(raw, key), f"{name} must be a list")
        return ()
    texts = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            out.add(line_of(value, index), f"{name}: items must be non-empty text, got {item!r}")
        else:
            texts.append(item.strip())
    return tuple(texts)


def _entry(raw: Any, line: int, out: Problems) -> AllowEntry | None:
    if not isinstance(raw, Mapping):
        out.add(line, f"an allow entry is a mapping with any of: {', '.join(ALLOW_KEYS)}")
        return None
    before = out.count
    for key in raw:
        if key not in ALLOW_KEYS:
            out.add(line_of(raw, key), f"unknown allow key {key!r} (known: {', '.join(ALLOW_KEYS)})")
    access = raw.get("access", "read")
    if access not in ACCESSES:
        out.add(line_of(raw, "access"), f"access must be one of {', '.join(ACCESSES)}, got {access!r}")
    programs: list[ProgramMatch] = []
    if "programs" in raw:
        value = raw["programs"]
        if not isinstance(value, list):
            out.add(line_of(raw, "programs"), "allow.programs must be a list")
        else:
            for index, item in enumerate(value):
                program = _program(item, line_of(value, index), out)
                if program is not None:
                    programs.append(program)
    users = _texts(raw, "users", "allow.users", out)
    groups = _texts(raw, "groups", "allow.groups", out)
    parents = _texts(raw, "parents", "allow.parents", out)
    services = _texts(raw, "services", "allow.services", out)
    if out.count > before:
        return None
    return AllowEntry(users, groups, tuple(programs), parents, services, str(access), line)


def _program(raw: Any, line: int, out: Problems) -> ProgramMatch | None:
    if isinstance(raw, str):
        raw = {"executable": raw}
    if not isinstance(raw, Mapping):
        out.add(line, "allow.programs: items are {executable, sha256} or {interpreter, script, script_sha256}")
        return None
    before = out.count
    for key in raw:
        if key not in PROGRAM_KEYS:
            out.add(line_of(raw, key), f"allow.programs: unknown key {key!r} (known: {', '.join(PROGRAM_KEYS)})")
    if not any(key in raw for key in PROGRAM_KEYS):
        out.add(line_of(raw), "allow.programs: an item needs executable, sha256, interpreter or script")
    values: dict[str, str | None] = {}
    for key in PROGRAM_KEYS:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            hint = " (YAML read it as a number: quote it)" if isinstance(value, int | float) else ""
            out.add(line_of(raw, key), f"allow.programs: {key} must be text, got {value!r}{hint}")
            value = None
        values[key] = value
    for key in ("sha256", "script_sha256"):
        digest = values[key]
        if digest is not None and not _SHA256.match(digest):
            out.add(line_of(raw, key), f"allow.programs: {key} must be 64 hex digits, got {digest!r}")
    interpreter = values["interpreter"]
    if interpreter is not None and interpreter not in INTERPRETERS:
        out.add(line_of(raw, "interpreter"), f"allow.programs: interpreter must be one of {', '.join(INTERPRETERS)}")
    if (values["script"] or values["script_sha256"]) and interpreter is None:
        out.add(line_of(raw), "allow.programs: script needs interpreter (python, shell or perl)")
    for key in ("executable", "script"):
        glob = values[key]
        if glob is not None and not glob.startswith("/"):
            out.add(line_of(raw, key), f"allow.programs: {key} {glob!r} must be an absolute path")
    if out.count > before:
        return None
    return ProgramMatch(values["executable"], _lower(values["sha256"]), interpreter, values["script"],
                        _lower(values["script_sha256"]))


def _lower(digest: str | None) -> str | None:
    return digest.lower() if digest else None


class AccessPolicies:
    """The policy in force: `reload()` reads the files again; a refused file keeps its previous policies."""

    def __init__(self, paths: Iterable[str] | None = None) -> None:
        self._paths = list(paths) if paths is not None else None
        self._stamp = self.stamp()
        self.current = load_policies(self._paths)
        self.generation = 0  # bumped on every reload: decision caches drop what they hold

    def reload(self) -> PolicySet:
        self._stamp = self.stamp()
        self.current = load_policies(self._paths, self.current)
        self.generation += 1
        return self.current

    def stamp(self) -> tuple[tuple[str, int, int, int], ...]:
        """Which policy files there are and their versions: a new, edited, replaced or removed file changes it."""
        found = []
        for path in policy_files(self._paths):
            try:
                st = os.stat(path)
            except OSError:
                continue
            found.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(found)

    def refresh(self) -> PolicySet | None:
        """Reload when a policy file changed since the last load (the agent asks every few seconds)."""
        return self.reload() if self.stamp() != self._stamp else None
