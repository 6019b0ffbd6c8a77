"""Which files a process has loaded: open (/proc/<pid>/fd) or memory-mapped (/proc/<pid>/maps), by
(device, inode), whatever their names; the caller tells which of them are protected models."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from weightwarden.agent.events import ModelFile
from weightwarden.agent.serving.observations import ServedModel


def loaded_files(pid: int) -> dict[tuple[int, int], bool]:
    """(device, inode) -> mapped, for every regular file `pid` holds open or has mapped."""
    found: dict[tuple[int, int], bool] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        fds = []
    for fd in fds:
        try:
            info = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            found.setdefault((info.st_dev, info.st_ino), False)
    try:
        with open(f"/proc/{pid}/maps", "rb") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) < 5 or parts[4] == b"0":
                    continue
                major, _, minor = parts[3].partition(b":")
                try:
                    key = (os.makedev(int(major, 16), int(minor, 16)), int(parts[4]))
                except ValueError:
                    continue
                found[key] = True
    except OSError:
        pass
    return found


def loaded_models(pid: int, protected_at: Callable[[int, int], ModelFile | None]) -> tuple[ServedModel, ...]:
    """The protected models `pid` has loaded (`protected_at`: the inventory's protected file at an identity)."""
    models: dict[str, ServedModel] = {}
    for (device, inode), mapped in loaded_files(pid).items():
        model = protected_at(device, inode)
        if model is not None:
            seen = models.get(model.path)
            models[model.path] = ServedModel(model.model, model.shown, mapped or bool(seen and seen.mapped))
    return tuple(sorted(models.values(), key=lambda m: (m.model, m.path)))
