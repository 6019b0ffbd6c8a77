"""Where Weightwarden keeps its own files, and where model files usually sit on a machine.

Everything here only computes paths; nothing is created. The agent runs either as one user's agent
("user" mode, XDG directories) or as the machine-wide service ("system" mode, /etc and /var/lib).
Home is always `os.path.expanduser("~")`, so it follows $HOME (and tests can move it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Literal

Mode = Literal["user", "system"]

CONFIG_ENV = "WEIGHTWARDEN_CONFIG"
DATA_DIR_ENV = "WEIGHTWARDEN_DATA_DIR"
SYSTEM_CONFIG_FILE = "/etc/weightwarden/config.toml"
SYSTEM_DATA_DIR = "/var/lib/weightwarden"


def detect_mode() -> Mode:
    """The mode implied by who we run as; the config's [agent] mode can force the other one."""
    return "system" if os.geteuid() == 0 else "user"


def as_mode(value: str) -> Mode:
    """Check a mode given by a caller; raises ValueError for anything but "user" or "system"."""
    if value == "user":
        return "user"
    if value == "system":
        return "system"
    raise ValueError(f"mode must be 'user' or 'system', got {value!r}")


def home() -> str:
    return os.path.expanduser("~")


def absolute(path: str) -> str:
    """`~` expanded, made absolute and normalised, so equal places compare equal."""
    return os.path.abspath(os.path.expanduser(path))


def default_config_file(mode: Mode) -> str:
    """$WEIGHTWARDEN_CONFIG, else the XDG config file (user) or /etc/weightwarden/config.toml (system)."""
    override = _env_path(CONFIG_ENV)
    if override:
        return override
    if as_mode(mode) == "system":
        return SYSTEM_CONFIG_FILE
    return os.path.join(_xdg_dir("XDG_CONFIG_HOME", ".config"), "weightwarden", "config.toml")


def default_data_dir(mode: Mode) -> str:
    """$WEIGHTWARDEN_DATA_DIR, else the XDG data dir (user) or /var/lib/weightwarden (system)."""
    override = _env_path(DATA_DIR_ENV)
    if override:
        return override
    if as_mode(mode) == "system":
        return SYSTEM_DATA_DIR
    return os.path.join(_xdg_dir("XDG_DATA_HOME", os.path.join(".local", "share")), "weightwarden")


def default_protected_roots() -> list[str]:
    """Where model tools keep weights by default, honouring their own environment variables.

    Returned whether they exist or not (pass through `existing`), in a stable order, without duplicates.
    """
    cache = _xdg_dir("XDG_CACHE_HOME", ".cache")
    candidates = [
        os.path.join(home(), "models"),
        # Hugging Face: HF_HOME replaces the cache location; HF_HUB_CACHE can move the hub part elsewhere.
        _env_path("HF_HOME") or os.path.join(cache, "huggingface"),
        _env_path("HF_HUB_CACHE"),
        os.path.join(home(), ".ollama", "models"),
        _env_path("OLLAMA_MODELS"),
        _env_path("TORCH_HOME") or os.path.join(cache, "torch"),
        # LM Studio uses these fixed locations whatever XDG_CACHE_HOME says.
        os.path.join(home(), ".cache", "lm-studio"),
        os.path.join(home(), ".lmstudio", "models"),
    ]
    return unique_paths(path for path in candidates if path)


def default_watch_roots() -> list[str]:
    """Places a copy of a model typically lands before it leaves the machine (the caller filters)."""
    candidates = [
        os.path.join(home(), "Downloads"),
        os.path.join(home(), "Desktop"),
        os.path.join(home(), "Documents"),
        tempfile.gettempdir(),
        "/var/tmp",
        "/dev/shm",
    ]
    return unique_paths(candidates)


def existing(paths: Iterable[str]) -> list[str]:
    """The paths that are directories now (symlinks to directories count), in the given order."""
    return [path for path in paths if os.path.isdir(path)]


def unique_paths(paths: Iterable[str]) -> list[str]:
    """Absolute, normalised paths with duplicates removed, first occurrence kept."""
    return list(dict.fromkeys(absolute(path) for path in paths))


def drop_nested(paths: Iterable[str]) -> list[str]:
    """Drop every path that lies inside another path of the list: watching the outer one covers it.

    Compares normalised text, not resolved symlinks, so a symlinked root is kept as its own entry.
    """
    roots = unique_paths(paths)
    return [path for path in roots if not any(other != path and is_inside(path, other) for other in roots)]


def is_inside(path: str, root: str) -> bool:
    """True when `path` is `root` or below it (absolute paths; "/a/bc" is not inside "/a/b")."""
    return os.path.commonpath([absolute(path), absolute(root)]) == absolute(root)


def _env_path(name: str) -> str | None:
    value = os.environ.get(name, "")
    return absolute(value) if value else None


def _xdg_dir(variable: str, fallback_under_home: str) -> str:
    # The XDG base directory spec says a relative value is invalid and must be ignored.
    value = os.environ.get(variable, "")
    if os.path.isabs(value):
        return os.path.normpath(value)
    return os.path.join(home(), fallback_under_home)
