"""Where a path is, as the copy rule and the posture checks rate it: the kind of place a file landed in.

Kinds: removable, network-share, cloud-sync, disk-image (agent/sensors/mounts.py: the kind of the mount or
sync folder a path is in), temporary (the temporary folders below, on a local disk) and local. A stick, a
share, an image or a sync folder says more about where a copy goes than a temporary parent does, so the
mount's kind wins over the temporary folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache

from weightwarden.agent.sensors.mounts import Mount, path_kind

KINDS = ("removable", "network-share", "cloud-sync", "disk-image", "temporary", "local")


def destination_kind(path: str, *, mounts: Mapping[str, Mount] | None = None,
                     temporary: Sequence[str] | None = None) -> str:
    """The kind of place `path` is in (see KINDS); `mounts` and `temporary` default to this machine's."""
    real = os.path.realpath(path)
    kind = path_kind(real, dict(mounts) if mounts is not None else None)
    roots = temporary_roots() if temporary is None else temporary
    if kind == "local" and any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots):
        return "temporary"
    return kind


@lru_cache(maxsize=1)
def temporary_roots() -> tuple[str, ...]:
    """The temporary folders of this machine that exist, resolved: $TMPDIR, /tmp, /var/tmp, /dev/shm."""
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"}
    return tuple(sorted(os.path.realpath(r) for r in roots if os.path.isdir(r)))
