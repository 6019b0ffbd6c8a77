"""Destinations configured from the app, for the running agent: list, add/replace, remove, test.

A change is checked by the config schema (agent/config/, the same messages as for the config file),
written to the managed drop-in in the data dir (atomically, 0640: it may hold tokens and passwords),
and then applied to the running forwarders, so it is live at once and still there after a restart.
Destinations of the config file itself are listed but not changed here: that file belongs to whoever
manages the machine's configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import grp
import os
import threading
import tomllib
from collections.abc import Callable
from typing import Any

from weightwarden.agent.config import (
    Config,
    ForwardDestination,
    check_managed_destinations,
    managed_destinations_file,
    managed_destinations_text,
)
from weightwarden.agent.forward.destination_types import SECRET_KEYS
from weightwarden.agent.forward.live_test import send_test_record
from weightwarden.agent.secret_files import SECRET_FILE_KEYS, SECRETS_DIR, secret_file_problem

NOT_KEYS = frozenset({"name", "managed", "located"})
RECEIVER_KEYS = ("type", "url", "address")  # a kept secret goes only to the receiver it was given for
Applier = Callable[[tuple[ForwardDestination, ...]], dict[str, str]]


class ManagedDestinations:
    def __init__(self, config: Config, apply: Applier) -> None:
        self.file = managed_destinations_file(config)
        self.host = config.agent_name
        self.admin_group = config.agent.admin_group
        self.fixed = tuple(d for d in config.forward if not d.managed)  # from the config file
        self.current = config.forward
        self.apply = apply
        self._lock = threading.Lock()  # one change at a time: read, check, write, apply
        # A root agent reads secret files for admins who cannot read them: only from SECRETS_DIR (secret_files.py).
        self.secrets_dir: str | None = SECRETS_DIR if os.geteuid() == 0 else None

    # ------------------------------------------------------------------ requests

    def describe(self) -> list[dict[str, Any]]:
        """Every destination the agent forwards to, with its settings (secrets left out)."""
        return [describe(d) for d in self.current]

    def set(self, name: object, values: object) -> dict[str, Any]:
        """Add [forward.NAME] or replace it; keys left out take their defaults, except secrets, which an edit
        keeps unless it sends a new value."""
        if not isinstance(name, str) or not name:
            return _refused(["a destination needs a name"])
        if not isinstance(values, dict):
            return _refused(["values must be an object of key: value"])
        problems = [f"[forward.{name}] {key}: a value is a string, number or boolean, got {type(value).__name__}"
                    for key, value in values.items()
                    if not isinstance(key, str) or not isinstance(value, str | bool | int | float)]
        if problems:
            return _refused(problems)
        if any(d.name == name for d in self.fixed):
            return _refused([f"[forward.{name}] is defined in the config file; change it there"])
        with self._lock:
            tables, error = self._read()
            if error:
                return _refused([error])
            old = tables.get(name, {})
            same_receiver = all(values.get(k) == old.get(k) for k in RECEIVER_KEYS)
            kept = {k: old[k] for k in SECRET_KEYS if same_receiver and k in old and k not in values}
            tables[name] = {**kept, **values}
            problems = self._secret_problems(name, tables[name])
            if problems:
                return _refused(problems)
            reply = self._write(tables)
            dropped = [k for k in SECRET_KEYS if old.get(k) and k not in values and not same_receiver]
            if not reply["ok"] and dropped:
                return _refused([*reply["problems"], f"[forward.{name}] the stored {', '.join(dropped)} was not kept: "
                                 f"a stored secret goes only to the receiver it was given for ("
                                 f"{', '.join(RECEIVER_KEYS)} unchanged); send it again"])
            return reply

    def _secret_problems(self, name: str, table: dict[str, Any]) -> list[str]:
        """Secrets go only over TLS, and (root agent) secret files only come from root's own place."""
        problems = []
        if self.secrets_dir is not None:
            for key in SECRET_FILE_KEYS:
                path = table.get(key)
                problem = secret_file_problem(path, self.secrets_dir) if isinstance(path, str) and path else ""
                if problem:
                    problems.append(f"[forward.{name}] {key}: {problem}")
        url = table.get("url")
        secrets = [k for k in (*SECRET_KEYS, "token_file") if table.get(k)]
        if isinstance(url, str) and url.strip().lower().startswith("http://") and secrets:
            problems.append(f"[forward.{name}] url: {url} is plain http, and secrets ({', '.join(secrets)}) are "
                            "never sent over plain http; use https://")
        return problems

    def remove(self, name: object) -> dict[str, Any]:
        if any(d.name == name for d in self.fixed):
            return _refused([f"[forward.{name}] is defined in the config file; remove it there"])
        with self._lock:
            tables, error = self._read()
            if error:
                return _refused([error])
            if not isinstance(name, str) or name not in tables:
                return _refused([f"no destination {name!r} was configured from the app"])
            del tables[name]
            return self._write(tables)

    def test(self, name: str) -> dict[str, Any]:
        matches = [d for d in self.current if d.name == name]
        if not matches:
            return {"ok": False, "error": f"no destination {name!r} in the agent's configuration"}
        return send_test_record(matches[0], self.host, "the app").as_reply()

    # ------------------------------------------------------------------ the drop-in

    def _read(self) -> tuple[dict[str, dict[str, Any]], str]:
        try:
            with open(self.file, "rb") as handle:
                document = tomllib.load(handle)
        except FileNotFoundError:
            return {}, ""
        except (OSError, tomllib.TOMLDecodeError) as error:
            return {}, f"{self.file}: cannot be read ({error}); fix or remove it"
        tables = document.get("forward", {})
        return {name: dict(values) for name, values in tables.items() if isinstance(values, dict)}, ""

    def _write(self, tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
        text = managed_destinations_text(tables)
        found, problems = check_managed_destinations(self.file, text, (d.name for d in self.fixed))
        if problems:
            return _refused([p.message for p in problems])  # lines would point into a file not written
        _write_private(self.file, text, self.admin_group)
        self.current = self.fixed + found
        changes = self.apply(self.current)
        return {"ok": True, "changes": changes, "file": self.file, "destinations": self.describe()}


def describe(destination: ForwardDestination) -> dict[str, Any]:
    defaults = ForwardDestination()
    values = {f.name: getattr(destination, f.name) for f in dataclasses.fields(ForwardDestination)
              if f.name not in NOT_KEYS and getattr(destination, f.name) != getattr(defaults, f.name)}
    secrets = sorted(k for k in SECRET_KEYS if values.pop(k, None))
    return {"name": destination.name, "managed": destination.managed, "type": destination.type,
            "enabled": destination.enabled, "values": {"type": destination.type, **values},
            "secrets_set": secrets}


def _refused(problems: list[str]) -> dict[str, Any]:
    return {"ok": False, "error": "; ".join(problems), "problems": problems}


def _write_private(path: str, text: str, admin_group: str) -> None:
    """Replace `path` atomically with mode 0640 (group: the admin group when there is one and we are root)."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    try:
        os.fchmod(fd, 0o640)  # whatever the umask
        if admin_group and os.geteuid() == 0:
            with contextlib.suppress(KeyError, OSError):
                os.fchown(fd, 0, grp.getgrnam(admin_group).gr_gid)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    os.replace(temporary, path)
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
