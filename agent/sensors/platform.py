"""Which implementation of each sensor this machine and privilege allow, and why.

Decided once at start from probes (not from guesses about the OS): fanotify and the proc connector need
Linux and root; sock_diag needs Linux (and root to see other users and namespaces). Whatever is missing
falls back (psutil, watchdog + /proc/*/fd holders) and the reason is kept for `weightwarden status` and
the "reduced coverage" health event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from weightwarden.agent.config import SensorsSection
from weightwarden.agent.sensors import fanotify, fs_writes
from weightwarden.agent.sensors.network import sock_diag_unavailable
from weightwarden.agent.sensors.processes import proc_connector_unavailable


@dataclass(frozen=True, slots=True)
class SensorPlan:
    access: str  # fanotify | holders | off
    processes: str  # proc-connector | psutil
    network: str  # sock_diag | psutil | off
    mounts: bool
    gaps: dict[str, str] = field(default_factory=dict)  # sensor -> why it runs reduced
    writes: str = "inotify"  # fanotify-fid (filesystem marks, every write with its pid) | inotify (roots)

    @property
    def full_coverage(self) -> bool:
        return not self.gaps


def plan(settings: SensorsSection, *, mode: str) -> SensorPlan:
    gaps: dict[str, str] = {}
    system = mode == "system"
    access = "off"
    if settings.access:
        why = fanotify.unavailable() if system else "user mode"
        access = "fanotify" if why is None else "holders"
        if why is not None:
            gaps["access"] = (f"{why}: reads by other processes are seen only while the file is held open "
                              "(inotify open events + a /proc/*/fd scan), short reads may be missed")
    why = proc_connector_unavailable() if system else "user mode"
    processes = "proc-connector" if why is None else "psutil"
    if why is not None:
        gaps["processes"] = f"{why}: processes are polled, short-lived ones may go unattributed"
    network = "off"
    if settings.network:
        why = sock_diag_unavailable() if system else "user mode"
        network = "sock_diag" if why is None else "psutil"
        if why is not None:
            gaps["network"] = f"{why}: connections via psutil, bytes from per-process write counts"
    writes = "inotify"
    if system and settings.file_marks:
        why = fs_writes.unavailable()
        writes = "fanotify-fid" if why is None else "inotify"
        if why is not None:
            gaps["files"] = (f"{why}: file changes are watched with inotify under the watch roots only, "
                             "without the writer's pid")
    return SensorPlan(access, processes, network, settings.mounts, gaps, writes)
