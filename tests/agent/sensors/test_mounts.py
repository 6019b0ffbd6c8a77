"""The mount sensor on real mounts (tmpfs, made and removed by the test) and the kind of a place:
removable media by sysfs flags, network shares by filesystem type, cloud-sync folders by name."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.sensors.conftest import Collected, wait_for
from weightwarden.agent.sensors.mounts import (
    MountObservation,
    MountSensor,
    block_device_removable,
    classify,
    loop_backing_file,
    path_kind,
    read_mounts,
)


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


def test_loop_devices_are_disk_images(tmp_path: Path) -> None:
    image = tmp_path / "vault.img"
    image.write_bytes(b"")
    loop = tmp_path / "block" / "loop7" / "loop"
    loop.mkdir(parents=True)
    (loop / "backing_file").write_text(f"{image}\n")
    (tmp_path / "block" / "loop7" / "removable").write_text("0\n")
    assert loop_backing_file("/dev/loop7p1", sys_root=str(tmp_path)) == str(image)
    assert loop_backing_file("/dev/loop6", sys_root=str(tmp_path)) is None  # detached: no backing file
    assert classify("/mnt/vault", "ext4", "/dev/loop7", sys_root=str(tmp_path)) == "disk-image"
    # Opened on the desktop (udisks mounts under /media): it is media the user attached.
    assert classify("/media/ana/VAULT", "ext4", "/dev/loop7", sys_root=str(tmp_path)) == "removable"
    # the image's own kind wins when it is special: an image in a Dropbox folder is synced
    (loop / "backing_file").write_text("/home/ana/Dropbox/vault.img\n")
    assert classify("/mnt/vault", "ext4", "/dev/loop7", sys_root=str(tmp_path)) == "cloud-sync"


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


def mounted(collected: Collected, point: Path) -> MountObservation:
    def seen() -> list[MountObservation]:
        return [o for o in list(collected.items) if isinstance(o, MountObservation) and o.phase == "added"
                and o.mount.mount_point == str(point)]

    return wait_for(seen, timeout=15, what=f"the mount on {point}")[0]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.root
def test_a_loop_mounted_image_is_a_disk_image(mount_point: Path, tmp_path: Path, collected: Collected) -> None:
    mount_point = mount_point.rename(tmp_path / "vault")  # not a cloud-sync folder name
    image = tmp_path / "vault.img"
    with image.open("wb") as file:
        file.truncate(8 << 20)
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 (e2fsprogs) is not installed")
    assert run("mkfs.ext4", "-q", "-F", str(image)).returncode == 0
    sensor = MountSensor(collected.add, collected.add_health)
    sensor.start()
    try:
        result = run("mount", "-o", "loop", str(image), str(mount_point))
        if result.returncode != 0:
            pytest.skip(f"cannot mount a loop device here: {result.stderr.strip()}")
        added = mounted(collected, mount_point)
        assert added.mount.source.startswith("/dev/loop") and added.mount.fstype == "ext4"
        assert added.mount.backing_file == str(image)
        assert added.mount.kind == "disk-image"  # the test's tmp_path is on a local disk
        assert not block_device_removable(added.mount.source)
    finally:
        sensor.stop()
        run("umount", str(mount_point))


def scsi_debug_disk() -> str | None:
    """The disk of a removable scsi_debug device, after loading the module; None when it cannot be."""
    if not os.path.isdir("/sys/module/scsi_debug"):
        if shutil.which("modprobe") is None:
            return None
        if run("modprobe", "scsi_debug", "removable=1", "dev_size_mb=8").returncode != 0:
            return None
    disks = sorted(Path("/sys/bus/pseudo/drivers/scsi_debug").glob("adapter*/host*/target*/*:*/block/*"))
    return disks[0].name if disks else None


@pytest.mark.root
def test_removable_scsi_debug_disk_is_removable(mount_point: Path, tmp_path: Path, collected: Collected) -> None:
    mount_point = mount_point.rename(tmp_path / "stick")  # not a cloud-sync folder name
    modules = Path("/lib/modules") / os.uname().release
    disk = scsi_debug_disk()
    if disk is None:
        pytest.skip(f"scsi_debug is not available: not loaded, {'' if shutil.which('modprobe') else 'no modprobe, '}"
                    f"{modules} {'exists but loading failed' if modules.exists() else 'is missing'}")
    if Path(f"/sys/block/{disk}/removable").read_text().strip() != "1":
        pytest.skip(f"scsi_debug was loaded earlier without removable=1 (/dev/{disk} is fixed)")
    assert run("mkfs.ext4", "-q", "-F", f"/dev/{disk}").returncode == 0
    sensor = MountSensor(collected.add, collected.add_health)
    sensor.start()
    try:
        assert run("mount", f"/dev/{disk}", str(mount_point)).returncode == 0
        added = mounted(collected, mount_point)
        assert added.mount.kind == "removable" and added.mount.source == f"/dev/{disk}"
        assert path_kind(str(mount_point / "copy.safetensors")) == "removable"
    finally:
        sensor.stop()
        run("umount", str(mount_point))


SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {folder}/host_key
AuthorizedKeysFile {folder}/authorized_keys
PidFile {folder}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
"""


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A private sshd on 127.0.0.1 (own keys, own port) for sshfs; stopped after the test."""
    for tool in ("sshfs", "ssh-keygen", "/usr/sbin/sshd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: sshfs, openssh-server)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing: this kernel or container offers no FUSE")
    folder = tmp_path / "ssh"
    folder.mkdir(mode=0o700)
    for key in ("host_key", "client_key"):
        assert run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)).returncode == 0
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    with socket.socket() as probe:  # a free port, released just before sshd binds it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (folder / "sshd_config").write_text(SSHD_CONFIG.format(port=port, folder=folder))
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    server = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(folder / "sshd_config")],
                              stderr=subprocess.PIPE, text=True)
    try:
        def listening() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"sshd exited: {server.stderr.read() if server.stderr else ''}")
            with socket.socket() as client:
                return client.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=15, what="sshd to listen")
        yield port, folder / "client_key"
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stderr is not None:
            server.stderr.close()


@pytest.mark.root
def test_sshfs_mount_is_a_network_share(sshd: tuple[int, Path], tmp_path: Path, collected: Collected) -> None:
    port, key = sshd
    remote = tmp_path / "remote"
    remote.mkdir()
    point = tmp_path / "share"
    point.mkdir()
    sensor = MountSensor(collected.add, collected.add_health)
    sensor.start()
    try:
        result = run("sshfs", f"root@127.0.0.1:{remote}", str(point), "-p", str(port), "-o",
                     f"IdentityFile={key},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes")
        if result.returncode != 0:
            pytest.skip(f"sshfs could not mount here: {result.stderr.strip()}")
        added = mounted(collected, point)
        assert (added.mount.fstype, added.mount.source) == ("fuse.sshfs", f"root@127.0.0.1:{remote}")
        assert added.mount.kind == "network-share"
        (point / "copy.bin").write_bytes(b"w" * 10)  # a real share: the bytes land on the other side
        assert (remote / "copy.bin").read_bytes() == b"w" * 10
        assert path_kind(str(point / "copy.bin")) == "network-share"
    finally:
        sensor.stop()
        run("fusermount3", "-u", str(point))
