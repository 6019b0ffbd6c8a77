"""The agent's scope: whose places it protects and watches, and who or what is not covered and why.

System mode: every person's account (accounts.py) with their usual model stores and copy places
(stores.py, their environment files read as text by environment.py), plus the machine's own places (the
Ollama service's store, temporary folders) and what the config adds. User mode: the same shape for the
one user running the agent, from the config as ever ($HOME-based defaults).

Config keys keep their meaning: `[inventory] roots` / `[watch] roots`, when the file sets them, replace the
usual places (every person's too: an admin who lists roots gets exactly those); `extra_roots` always add.

A Scope is a frozen value computed at one moment: a place that does not exist then is listed as missing.
The agent computes it again every few seconds (watcher.py), so accounts and folders that appear later are
picked up without a restart.
"""

from __future__ import annotations

import functools
import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.config import Config
from weightwarden.agent.events import display_path
from weightwarden.agent.paths import Mode, drop_nested, home, unique_paths
from weightwarden.agent.scope.accounts import HOME_SECONDS, Account, AccountFiles, NotCovered, read_accounts
from weightwarden.agent.scope.bounded import TimedOut, all_bounded
from weightwarden.agent.scope.environment import session_environment, system_environment_files
from weightwarden.agent.scope.stores import (
    OLLAMA_UNITS,
    Place,
    copy_places,
    model_stores,
    service_stores,
    temporary_folders,
    unique,
)

REPLACED_BY_ROOTS = "[inventory] roots is set: it replaces the usual model folders"


@dataclass(frozen=True, slots=True)
class UserScope:
    """One person's covered places (existing now) and the usual ones that do not exist now."""

    name: str
    uid: int
    home: str
    protected: tuple[Place, ...]
    watched: tuple[Place, ...]
    missing: tuple[Place, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": display_path(self.name), "uid": self.uid, "home": display_path(self.home),
                "protected_roots": _paths(self.protected), "watch_roots": _paths(self.watched),
                "missing": [_place_dict(p) for p in self.missing]}


@dataclass(frozen=True, slots=True)
class Scope:
    mode: Mode
    users: tuple[UserScope, ...]
    not_covered: tuple[NotCovered, ...]
    shared_protected: tuple[Place, ...]  # the machine's own stores and configured roots, existing now
    shared_watched: tuple[Place, ...]
    shared_missing: tuple[Place, ...]
    problems: tuple[str, ...] = ()  # unreadable account files, malformed lines

    @property
    def protected_roots(self) -> list[str]:
        """Every existing protected root, each once: what the agent inventories."""
        return unique_paths(p.path for p in [*(p for u in self.users for p in u.protected), *self.shared_protected])

    @property
    def watch_roots(self) -> list[str]:
        """Every existing root watched for copies, protected ones included, none inside another."""
        watched = [p.path for p in [*(p for u in self.users for p in u.watched), *self.shared_watched]]
        return drop_nested([*self.protected_roots, *watched])

    def to_dict(self) -> dict[str, Any]:
        """Display text throughout (a non-UTF-8 name shows as \\xNN): the status snapshot, `config show --json`."""
        return {"mode": self.mode, "users_covered": [u.to_dict() for u in self.users],
                "not_covered": [{"name": display_path(n.name), "uid": n.uid, "home": display_path(n.home),
                                 "why": n.why, "detail": display_path(n.detail)} for n in self.not_covered],
                "shared_protected_roots": _paths(self.shared_protected),
                "shared_watch_roots": _paths(self.shared_watched),
                "shared_missing": [_place_dict(p) for p in self.shared_missing],
                "protected_roots": [display_path(p) for p in self.protected_roots],
                "watch_roots": [display_path(p) for p in self.watch_roots],
                "problems": [display_path(p) for p in self.problems]}


@dataclass(frozen=True, slots=True)
class SystemFiles:
    """The machine's files the scope reads; tests point them at files they wrote."""

    accounts: AccountFiles = field(default_factory=AccountFiles)
    environment: tuple[str, ...] | None = None  # None: /etc/environment and /etc/environment.d/*.conf
    service_units: tuple[str, ...] = OLLAMA_UNITS


def compute_scope(config: Config, files: SystemFiles | None = None, *,
                  probe_seconds: float = HOME_SECONDS) -> Scope:
    if config.mode == "system":
        return _system_scope(config, files or SystemFiles(), probe_seconds)
    return _user_scope(config, probe_seconds)


def _system_scope(config: Config, files: SystemFiles, seconds: float) -> Scope:
    accounts = read_accounts(files.accounts, home_seconds=seconds)
    usual_stores = not config.is_set("inventory", "roots")
    usual_copy_places = not config.is_set("watch", "roots")
    environment = files.environment if files.environment is not None else tuple(system_environment_files())
    users: list[UserScope] = []
    not_covered = list(accounts.not_covered)
    # every person's places looked at at once: homes on one dead server cost one deadline, not one each
    looks = all_bounded({f"places:{a.name}:{a.home}": functools.partial(  # names are unique among people
        _person, a, environment, usual_stores, usual_copy_places) for a in accounts.people}, seconds)
    for account, found in zip(accounts.people, looks.values(), strict=True):
        if isinstance(found, TimedOut):
            not_covered.append(NotCovered(account.name, account.uid, account.home, "home-unreachable",
                                          f"home {account.home} unreachable: {found}"))
        else:
            users.append(found)
    protected = service_stores(accounts.not_covered, files.service_units) if usual_stores else []
    protected += _configured(config, "inventory")
    watched = (temporary_folders() if usual_copy_places else []) + _configured(config, "watch")
    shared = _split(protected, watched, seconds)
    return Scope("system", tuple(users), tuple(not_covered), *shared, problems=accounts.problems)


def _person(account: Account, environment: Iterable[str], usual_stores: bool, usual_copy_places: bool
            ) -> UserScope:
    """On a helper thread: reads the person's environment files and looks at each place."""
    if usual_stores:
        env = session_environment(account.home, account.name, system_files=environment)
        protected = model_stores(account.home, env)
    else:
        protected = []
    watched = copy_places(account.home) if usual_copy_places else []
    found_protected, found_watched, missing = _split(protected, watched, None)
    return UserScope(account.name, account.uid, account.home, found_protected, found_watched, missing)


def _user_scope(config: Config, seconds: float) -> Scope:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    protected = _configured(config, "inventory", usual="usual model folder")
    watched = _configured(config, "watch", usual="usual copy place")
    found_protected, found_watched, missing = _split(protected, watched, seconds)
    user = UserScope(name, uid, home(), found_protected, found_watched, missing)
    return Scope("user", (user,), (), (), (), ())


def _configured(config: Config, section: str, *, usual: str = "") -> list[Place]:
    """The section's roots (when set in the file, or `usual` names the defaults) and extra_roots."""
    settings = getattr(config, section)
    places = []
    if config.is_set(section, "roots") or usual:
        what = f"[{section}] roots" if config.is_set(section, "roots") else usual
        places += [Place(path, what) for path in unique_paths(settings.roots)]
    places += [Place(path, f"[{section}] extra_roots") for path in unique_paths(settings.extra_roots)]
    return unique(places)


def _split(protected: list[Place], watched: list[Place], seconds: float | None
           ) -> tuple[tuple[Place, ...], tuple[Place, ...], tuple[Place, ...]]:
    """(protected that exist, watched that exist, missing); `seconds` bounds each look (None: look here)."""
    paths = [p.path for p in unique([*protected, *watched])]
    if seconds is None:
        states = {path: os.path.isdir(path) for path in paths}
    else:  # a configured root on a dead share is missing for now, and costs one shared deadline
        looks = all_bounded({"dir:" + path: functools.partial(os.path.isdir, path) for path in paths}, seconds)
        states = {path: looks["dir:" + path] is True for path in paths}
    missing = unique(p for p in [*protected, *watched] if not states[p.path])
    return (tuple(p for p in unique(protected) if states[p.path]),
            tuple(p for p in unique(watched) if states[p.path]), tuple(missing))


def _paths(places: Iterable[Place]) -> list[str]:
    return [display_path(p.path) for p in places]


def _place_dict(place: Place) -> dict[str, str]:
    return {"path": display_path(place.path), "what": display_path(place.what)}

