"""Where a person's models usually are, and where copies of them usually land; the machine's own stores.

The same places as `paths.default_protected_roots` / `default_watch_roots`, but for any user's home and
environment (environment.py), so the machine-wide agent can list them for every account. Where a variable
moves a tool's store, both the variable's values and the tool's default are listed: the files say what
sessions may use, not which one a given process saw. Nothing here touches the disk except reading the
small files that say where things are; whether each place exists is the caller's question (scope.py
asks it on a helper thread, since a home may hang).
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from weightwarden.agent.scope.accounts import NotCovered, read_bounded
from weightwarden.agent.scope.environment import Environment, expand, parse_line, unquote

# The Ollama service's own store (its installer makes an `ollama` system account with this home), and the
# state directory some packages use instead.
OLLAMA_SERVICE_STORES = ("/usr/share/ollama/.ollama/models", "/var/lib/ollama")
OLLAMA_UNITS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
USER_DIRS = {"XDG_DOWNLOAD_DIR": "Downloads", "XDG_DESKTOP_DIR": "Desktop", "XDG_DOCUMENTS_DIR": "Documents"}


@dataclass(frozen=True, slots=True)
class Place:
    """A directory and what it is, in words ("Hugging Face cache (HF_HOME in /etc/environment:3)")."""

    path: str
    what: str


def model_stores(home: str, env: Environment) -> list[Place]:
    """The usual model stores of the user with this home and session environment."""
    caches = [Place(os.path.join(home, ".cache"), ""), *_set(env, "XDG_CACHE_HOME")]
    places = [Place(os.path.join(home, "models"), "models folder")]
    places += [Place(os.path.join(c.path, "huggingface"), _what("Hugging Face cache", c)) for c in caches]
    places += _set(env, "HF_HOME", "Hugging Face home") + _set(env, "HF_HUB_CACHE", "Hugging Face hub cache")
    places += _set(env, "HUGGINGFACE_HUB_CACHE", "Hugging Face hub cache")
    places += [Place(os.path.join(home, ".ollama", "models"), "Ollama models")]
    places += _set(env, "OLLAMA_MODELS", "Ollama models")
    places += [Place(os.path.join(c.path, "torch"), _what("torch hub cache", c)) for c in caches]
    places += _set(env, "TORCH_HOME", "torch home")
    # LM Studio uses these fixed locations whatever XDG_CACHE_HOME says.
    places += [Place(os.path.join(home, ".cache", "lm-studio"), "LM Studio"),
               Place(os.path.join(home, ".lmstudio", "models"), "LM Studio models")]
    return unique(places)


def copy_places(home: str) -> list[Place]:
    """Where a copy typically lands before it leaves: Downloads, Desktop, Documents, also as renamed in
    ~/.config/user-dirs.dirs (xdg-user-dirs: `XDG_DOWNLOAD_DIR="$HOME/Téléchargements"`)."""
    places = [Place(os.path.join(home, name), name) for name in USER_DIRS.values()]
    user_dirs = os.path.join(home, ".config", "user-dirs.dirs")
    data = read_bounded(user_dirs, [], missing_ok=True, limit=64 * 1024) or b""
    for number, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), 1):
        for name, raw in parse_line(line, pam_user_syntax=False):
            value = expand(raw, {"HOME": home}) if name in USER_DIRS else None
            if value and os.path.isabs(value) and os.path.normpath(value) != os.path.normpath(home):
                places.append(Place(os.path.normpath(value), f"{USER_DIRS[name]} ({name} in {user_dirs}:{number})"))
    return unique(places)


def service_stores(service_accounts: Iterable[NotCovered], unit_dirs: Iterable[str] = OLLAMA_UNITS) -> list[Place]:
    """Model stores of services: the Ollama service's (its account's home, the usual places, and
    OLLAMA_MODELS set in its unit or drop-ins, read as text)."""
    places = [Place(path, "Ollama service store") for path in OLLAMA_SERVICE_STORES]
    places += [Place(os.path.join(a.home, ".ollama", "models"), f"Ollama service store (home of {a.name})")
               for a in service_accounts if a.name == "ollama" and os.path.isabs(a.home)]
    for directory in unit_dirs:
        for unit in [os.path.join(directory, "ollama.service"), *_drop_ins(directory)]:
            places += [Place(value, f"Ollama service store (OLLAMA_MODELS in {where})")
                       for value, where in unit_environment(unit, "OLLAMA_MODELS")]
    return unique(places)


def temporary_folders() -> list[Place]:
    return unique(Place(path, "temporary folder") for path in (tempfile.gettempdir(), "/var/tmp", "/dev/shm"))


def unit_environment(unit: str, name: str) -> list[tuple[str, str]]:
    """(value, file:line) of `name` in the `Environment=` lines of a systemd unit file."""
    data = read_bounded(unit, [], missing_ok=True, limit=256 * 1024) or b""
    found = []
    for number, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), 1):
        key, equals, rest = line.strip().partition("=")
        if not equals or key.strip() != "Environment":
            continue
        try:
            words = shlex.split(rest)
        except ValueError:
            continue
        for word in words:
            variable, _, value = word.partition("=")
            value = unquote(value)
            if variable == name and os.path.isabs(value):
                found.append((os.path.normpath(value), f"{unit}:{number}"))
    return found


def unique(places: Iterable[Place]) -> list[Place]:
    """Normalised, first occurrence kept (its `what` wins)."""
    seen: dict[str, Place] = {}
    for place in places:
        path = os.path.normpath(place.path)
        seen.setdefault(path, Place(path, place.what))
    return list(seen.values())


def _set(env: Environment, name: str, what: str = "") -> list[Place]:
    return [Place(s.value, f"{what} ({name} in {s.source})" if what else f"{name} in {s.source}")
            for s in env.values(name)]


def _what(base: str, cache: Place) -> str:
    return f"{base} (under {cache.what})" if cache.what else base


def _drop_ins(directory: str) -> list[str]:
    folder = os.path.join(directory, "ollama.service.d")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [os.path.join(folder, name) for name in names if name.endswith(".conf")]
