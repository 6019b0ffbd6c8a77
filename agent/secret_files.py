"""Which files an agent running as root may take a secret from, when someone other than root named them.

An admin (a member of the admin group) may name a token or key file for a destination from the app; the
agent reads it as root. Without a rule that lets an admin read any file on the machine (its content sent as
a header to a host of their choice). So a secret file named that way must resolve to a path under
SECRETS_DIR, and the file and every directory on its way from / must belong to root and be writable by no
group or other user: only root can have put it there, or swap it later.
"""

from __future__ import annotations

import os
import stat

SECRETS_DIR = "/etc/weightwarden"
SECRET_FILE_KEYS = ("token_file", "client_key")  # [forward.NAME] keys naming a file whose content is a secret


def secret_file_problem(path: str, secrets_dir: str = SECRETS_DIR) -> str:
    """Why `path` may not be read as a secret by a root agent ("" when it may)."""
    rule = f"secret files are read only from root-owned files under {secrets_dir} that no group or other user " \
           "can write"
    if not os.path.isabs(path):
        return f"{path} is not an absolute path; {rule}"
    resolved = os.path.realpath(path)
    base = os.path.realpath(secrets_dir)
    if not resolved.startswith(base.rstrip("/") + "/"):
        shown = path if resolved == os.path.normpath(path) else f"{path} (which resolves to {resolved})"
        return f"{shown} is not under {secrets_dir}; {rule}"
    parts = resolved.split("/")
    for end in range(1, len(parts) + 1):
        place = "/".join(parts[:end]) or "/"
        try:
            status = os.lstat(place)
        except OSError as error:
            return f"{path}: {place}: {error.strerror or error}"
        if place == resolved and not stat.S_ISREG(status.st_mode):
            return f"{path} is not a regular file; {rule}"
        if status.st_uid != 0:
            return f"{path}: {place} belongs to uid {status.st_uid}, not root; {rule}"
        if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path}: {place} is writable by its group or others (mode {stat.S_IMODE(status.st_mode):04o}); " \
                   f"{rule}"
    return ""
