"""Where a path is, as detection weighs it: the kind of place a copy landed in.

removable, network-share, cloud-sync, disk-image (the mount's kind, agent/sensors/mounts.py), temporary
(/tmp, /var/tmp, /dev/shm: a classic staging place), or local.
"""

from __future__ import annotations

import functools
import os
import tempfile

from weightwarden.agent.sensors.mounts import path_kind


def destination_kind(path: str) -> str:
    real = os.path.realpath(path)
    kind = path_kind(real)
    # A stick, share, image or sync folder says more about where the copy goes than a temporary parent.
    if kind == "local" and any(real == root or real.startswith(root.rstrip("/") + "/")
                               for root in _temporary_roots()):
        return "temporary"
    return kind


@functools.cache
def _temporary_roots() -> tuple[str, ...]:
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"}
    return tuple(sorted(os.path.realpath(r) for r in roots if os.path.isdir(r)))
