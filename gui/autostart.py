"""Start the app minimised at login: the XDG autostart entry, per user and machine-wide.

The package installs /etc/xdg/autostart/weightwarden-gui.desktop (any directory of $XDG_CONFIG_DIRS
counts). A user's ~/.config/autostart file of the same name overrides it (XDG autostart spec), so:
  on  -> remove the user's override when a machine-wide entry exists, else write a user entry;
  off -> write a user entry with Hidden=true when a machine-wide entry exists, else remove the user entry.
The machine-wide entry itself is never touched (it belongs to the package and the admin).
"""

from __future__ import annotations

import os
from pathlib import Path

ENTRY_NAME = "weightwarden-gui.desktop"
DEFAULT_COMMAND = "weightwarden-gui --minimized"


def user_entry() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "autostart" / ENTRY_NAME


def system_entry() -> Path | None:
    """The machine-wide entry in the first $XDG_CONFIG_DIRS directory that has one (the spec's order)."""
    dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    for base in dirs.split(":"):
        if base and (path := Path(base) / "autostart" / ENTRY_NAME).is_file():
            return path
    return None


def _active(path: Path) -> bool:
    """An entry starts the app unless Hidden=true or X-GNOME-Autostart-enabled=false says otherwise."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    values: dict[str, str] = {}
    group = ""
    for line in lines:
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif group == "Desktop Entry" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values.get("Hidden", "false").lower() != "true" and \
        values.get("X-GNOME-Autostart-enabled", "true").lower() != "false"


def is_enabled() -> bool:
    """Whether the desktop starts the app at login for this user (their entry wins over the machine's)."""
    user = user_entry()
    if user.exists():
        return _active(user)
    machine = system_entry()
    return machine is not None and _active(machine)


def set_enabled(enabled: bool, command: str = DEFAULT_COMMAND) -> Path:
    """Switch autostart for this user; returns the file that decides it now."""
    user = user_entry()
    machine = system_entry()
    machine_active = machine is not None and _active(machine)
    if enabled and machine_active:
        user.unlink(missing_ok=True)  # the machine-wide entry starts it
        assert machine is not None
        return machine
    if not enabled and not machine_active:
        user.unlink(missing_ok=True)
        return user
    lines = ["[Desktop Entry]", "Type=Application", "Name=Weightwarden", "Comment=Review model-theft alerts",
             f"Exec={command}", "NoDisplay=true"]
    lines += ["X-GNOME-Autostart-enabled=true"] if enabled else ["Hidden=true"]
    user.parent.mkdir(parents=True, exist_ok=True)
    temporary = user.with_name(f".{user.name}.new")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(user)
    return user
