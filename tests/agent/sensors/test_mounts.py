"""The mount sensor on real mounts (tmpfs, made and removed by the test) and the kind of a place:
removable media by sysfs flags, network shares by filesystem type, cloud-sync folders by name."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.sensors.conftest import Collected, wait_for
from weightwarden.agent.sensors.mounts import MountObservation, MountSensor, classify, path_kind, read_mounts


def fake_sysfs(root: Path, disk: str, *, removable: bool, usb: bool = False) -> Path:
    device = root / "devices" / ("pci0000:00/usb1/1-1" if usb else "pci0000:00/ata1") / disk
    device.mkdir(parents=True)
    block = root / "block" / disk
    block.mkdir(parents=True)
    (block / "removable").write_text("1\n" if removable else "0\n")
    (block / "device").symlink_to(device)
    return root


@pytest.mark.parametrize(("point", "fstype", "source", "kind"), [
    ("/mnt/share", "nfs4", "server:/export", "network-share"),
    ("/mnt/win", "cifs", "//nas/models", "network-share"),
    ("/home/ana/remote", "fuse.sshfs", "ana@gpu-box:/data", "network-share"),
    ("/home/ana/Dropbox", "ext4", "/dev/vda1", "cloud-sync"),
    ("/home/ana/OneDrive - Contoso", "fuse.onedriver", "onedriver", "cloud-sync"),
    ("/home/ana/Google Drive", "fuse", "gdrive", "cloud-sync"),
    ("/tmp", "tmpfs", "tmpfs", "temporary"),
    ("/", "ext4", "/dev/vda1", "local"),
])
def test_classify_by_type_and_name(point: str, fstype: str, source: str, kind: str, tmp_path: Path) -> None:
    assert classify(point, fstype, source, sys_root=str(tmp_path)) == kind


def test_removable_and_usb_disks(tmp_path: Path) -> None:
    fake_sysfs(tmp_path, "sdb", removable=True)
    fake_sysfs(tmp_path, "sdc", removable=False, usb=True)
    fake_sysfs(tmp_path, "sda", removable=False)
    assert classify("/media/ana/STICK", "vfat", "/dev/sdb", sys_root=str(tmp_path)) == "removable"
    assert classify("/media/ana/SSD", "exfat", "/dev/sdc", sys_root=str(tmp_path)) == "removable"
    assert classify("/data", "ext4", "/dev/sda", sys_root=str(tmp_path)) == "local"


def test_the_real_mount_table_is_read() -> None:
    mounts = read_mounts()
    assert "/" in mounts and "/proc" in mounts
    assert path_kind("/proc/self") == mounts["/proc"].kind


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "Dropbox"
    point.mkdir()
    yield point
    subprocess.run(["umount", str(point)], check=False, capture_output=True)


@pytest.mark.root
def test_new_and_removed_mounts_are_observed(mount_point: Path, collected: Collected) -> None:
    sensor = MountSensor(collected.add, collected.add_health)
    sensor.start()
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "wwtest", str(mount_point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")

        def seen(phase: str) -> list[MountObservation]:
            return [o for o in list(collected.items) if isinstance(o, MountObservation) and o.phase == phase
                    and o.mount.mount_point == str(mount_point)]

        (added,) = wait_for(lambda: seen("added"), timeout=10, what="the new mount")
        assert (added.mount.fstype, added.mount.source, added.mount.kind) == ("tmpfs", "wwtest", "cloud-sync")
        assert path_kind(str(mount_point / "copy.bin")) == "cloud-sync"
        subprocess.run(["umount", str(mount_point)], check=True)
        wait_for(lambda: seen("removed"), timeout=10, what="the mount's removal")
        assert sensor.status().state == "running"
    finally:
        sensor.stop()
