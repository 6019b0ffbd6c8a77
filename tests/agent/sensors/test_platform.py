"""Sensor selection: what each mode and privilege gets, and the reasons coverage is reduced."""

from __future__ import annotations

import os

import pytest

from weightwarden.agent.config import SensorsSection
from weightwarden.agent.sensors import fanotify
from weightwarden.agent.sensors.platform import plan


def test_user_mode_falls_back_and_says_why() -> None:
    chosen = plan(SensorsSection(), mode="user")
    assert (chosen.access, chosen.processes, chosen.network, chosen.mounts) == ("holders", "psutil", "psutil", True)
    assert set(chosen.gaps) == {"access", "processes", "network"} and not chosen.full_coverage
    assert "user mode" in chosen.gaps["access"] and "/proc/*/fd" in chosen.gaps["access"]


def test_switched_off_sensors_are_not_gaps() -> None:
    chosen = plan(SensorsSection(access=False, network=False, mounts=False), mode="user")
    assert (chosen.access, chosen.network, chosen.mounts) == ("off", "off", False)
    assert set(chosen.gaps) == {"processes"}


@pytest.mark.root
def test_system_mode_as_root_gets_the_kernel_sensors() -> None:
    if os.geteuid() != 0 or fanotify.unavailable():
        pytest.skip(f"needs root and fanotify: {fanotify.unavailable()}")
    chosen = plan(SensorsSection(), mode="system")
    assert (chosen.access, chosen.processes, chosen.network) == ("fanotify", "proc-connector", "sock_diag")
    assert chosen.full_coverage
