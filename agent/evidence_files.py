"""Which files are the agent's evidence, and what each is: the evidence guard's list (system mode).

The data directory holds the database and its journals, the signing key and the managed destinations; the
configuration file's directory holds the configuration and the secrets it names. SQLite's shared-memory
index (`-shm`) is left out: every reader maps it for writing (it is an index of the WAL, not a record).
Every reader also opens the WAL read-write, even a read-only connection (`weightwarden alerts`): only a
write to it counts (WRITES_ONLY).
"""

from __future__ import annotations

import os

from weightwarden.agent.config import Config
from weightwarden.agent.keys import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME
from weightwarden.agent.paths import default_config_file

WRITE_AHEAD_LOG = "write-ahead log"
WRITES_ONLY = frozenset({WRITE_AHEAD_LOG})


def evidence_directories(config: Config) -> list[str]:
    """The directories to guard that exist (the configuration's may not: built-in defaults)."""
    config_file = config.source or default_config_file(config.mode)
    found = [config.data_dir, os.path.dirname(os.path.abspath(config_file))]
    return [d for d in dict.fromkeys(os.path.abspath(d) for d in found) if os.path.isdir(d)]


class EvidenceKind:
    """What a file in a guarded directory is (None: not guarded)."""

    def __init__(self, config: Config) -> None:
        self._database = os.path.abspath(config.database_path)
        self._data = os.path.abspath(config.data_dir)
        config_file = config.source or default_config_file(config.mode)
        self._config_file = os.path.abspath(config_file)
        self._config_dir = os.path.dirname(self._config_file)

    def __call__(self, path: str) -> str | None:
        if path.endswith(" (deleted)"):
            path = path[: -len(" (deleted)")]
        directory, name = os.path.split(path)
        if path == self._database:
            return "database"
        if path == self._database + "-wal":
            return WRITE_AHEAD_LOG
        if path == self._database + "-journal":
            return "rollback journal"
        if path == self._database + "-shm":
            return None
        if path == self._config_file:
            return "configuration"
        if directory == self._data:
            if name == PRIVATE_KEY_NAME:
                return "signing key"
            if name == PUBLIC_KEY_NAME:
                return "public key"
            return "data file"
        if directory == self._config_dir:
            return "configuration file"
        return None
