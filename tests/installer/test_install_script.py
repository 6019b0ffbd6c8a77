"""installer/linux/install.sh and uninstall.sh against a DESTDIR: idempotent, data kept, downgrades refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.installer.conftest import (
    INSTALLER,
    SYSTEM_PYTHON,
    group_line,
    newer_version,
    require,
    require_system_python,
    tree,
)
from weightwarden.agent import __version__

INSTALL = INSTALLER / "linux" / "install.sh"
UNINSTALL = INSTALLER / "linux" / "uninstall.sh"


def run(script: Path, root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DESTDIR": str(root)}
    env.pop("WEIGHTWARDEN_ALLOW_DOWNGRADE", None)
    result = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def install(root: Path, wheels: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(INSTALL, root, "--wheels", str(wheels), "--no-deps", "--python", SYSTEM_PYTHON, *extra, check=check)


@pytest.fixture(autouse=True)
def _tools() -> None:
    require("groupadd", "groupdel")
    require_system_python()


def test_install_lays_out_the_system_files(system_root: Path, wheelhouse: Path) -> None:
    install(system_root, wheelhouse)
    venv = system_root / "opt" / "weightwarden" / "venv"
    assert (venv / "bin" / "weightwarden").read_text().startswith("#!/opt/weightwarden/venv/bin/python")
    assert str(system_root) not in (venv / "bin" / "weightwarden").read_text()  # names the final place
    assert not list(venv.rglob("__pycache__"))
    assert os.readlink(system_root / "usr/local/bin/weightwarden") == "/opt/weightwarden/venv/bin/weightwarden"
    unit = system_root / "etc/systemd/system/weightwarden.service"
    assert unit.read_text() == (INSTALLER / "linux" / "weightwarden.service").read_text()
    wants = system_root / "etc/systemd/system/multi-user.target.wants/weightwarden.service"
    if wants.is_symlink():  # systemctl --root enables offline; absent without systemctl
        assert os.readlink(wants) == "/etc/systemd/system/weightwarden.service"
    for name in ("weightwarden-audit.service", "weightwarden-audit.timer"):  # the weekly audit
        assert (system_root / "etc/systemd/system" / name).read_text() == (INSTALLER / "linux" / name).read_text()
    timer_wants = system_root / "etc/systemd/system/timers.target.wants/weightwarden-audit.timer"
    if wants.is_symlink():  # enabled offline beside the service
        assert os.readlink(timer_wants) == "/etc/systemd/system/weightwarden-audit.timer"
    assert (system_root / "etc/xdg/autostart/weightwarden-gui.desktop").exists()
    assert "Exec=weightwarden-gui" in (system_root / "usr/local/share/applications/weightwarden.desktop").read_text()

    line = group_line(system_root)
    assert line is not None
    gid = int(line.split(":")[2])
    for directory, mode in (("etc/weightwarden", 0o750), ("var/lib/weightwarden", 0o750),
                            ("etc/weightwarden/config.toml", 0o640)):
        info = (system_root / directory).stat()
        assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (mode, 0, gid), directory
    assert (system_root / "var/lib/weightwarden/weightwarden.version").read_text() == f"{__version__}\n"


def test_install_twice_changes_nothing_and_keeps_the_config(system_root: Path, wheelhouse: Path) -> None:
    install(system_root, wheelhouse)
    config = system_root / "etc/weightwarden/config.toml"
    config.write_text(config.read_text() + '\n[inventory]\nextra_roots = ["/srv/models"]\n')
    (system_root / "var/lib/weightwarden/weightwarden.db").write_bytes(b"evidence")
    before = tree(system_root, skip=lambda p: "dist-info" in p.parts)
    install(system_root, wheelhouse)
    after = tree(system_root, skip=lambda p: "dist-info" in p.parts)
    assert after == before
    assert group_line(system_root) is not None and (system_root / "etc/group").read_text().count("weightwarden") == 1


def test_upgrade_keeps_config_and_data_and_moves_the_stamp(system_root: Path, wheelhouse: Path,
                                                           newer_wheelhouse: Path) -> None:
    install(system_root, wheelhouse)
    config = system_root / "etc/weightwarden/config.toml"
    older = "[agent]\nmode = \"system\"\nname = \"gpu-box-7\"\n"  # written before the format was numbered
    config.write_text(older)
    database = system_root / "var/lib/weightwarden/weightwarden.db"
    database.write_bytes(b"evidence")
    install(system_root, newer_wheelhouse)
    migrated = config.read_text()
    assert migrated.endswith("format = 1\n\n" + older)  # brought forward once, the admin's text kept
    assert (system_root / "etc/weightwarden/config.toml.format0.bak").read_text() == older
    install(system_root, newer_wheelhouse)
    assert config.read_text() == migrated and len(list(config.parent.glob("config.toml.format*"))) == 1
    assert database.read_bytes() == b"evidence"
    assert (system_root / "var/lib/weightwarden/weightwarden.version").read_text() == f"{newer_version()}\n"
    assert (system_root / "opt/weightwarden/share/version").read_text() == f"{newer_version()}\n"


def test_downgrade_is_refused_before_anything_changes(system_root: Path, wheelhouse: Path,
                                                      newer_wheelhouse: Path) -> None:
    install(system_root, newer_wheelhouse)
    before = tree(system_root)
    result = install(system_root, wheelhouse, check=False)
    assert result.returncode == 1
    assert f"refusing to downgrade: /var/lib/weightwarden was last used by Weightwarden {newer_version()}" \
        in " ".join(result.stderr.split())
    assert tree(system_root) == before


def test_uninstall_twice_keeps_config_and_data_then_purge_removes_them(system_root: Path,
                                                                       wheelhouse: Path) -> None:
    install(system_root, wheelhouse)
    (system_root / "var/lib/weightwarden/weightwarden.db").write_bytes(b"evidence")
    for _ in range(2):
        result = run(UNINSTALL, system_root)
        assert "kept /etc/weightwarden and /var/lib/weightwarden" in result.stderr
    for gone in ("opt/weightwarden", "usr/local/bin/weightwarden", "etc/systemd/system/weightwarden.service",
                 "etc/systemd/system/multi-user.target.wants/weightwarden.service",
                 "etc/systemd/system/weightwarden-audit.service", "etc/systemd/system/weightwarden-audit.timer",
                 "etc/systemd/system/timers.target.wants/weightwarden-audit.timer",
                 "etc/xdg/autostart/weightwarden-gui.desktop", "usr/local/share/applications/weightwarden.desktop"):
        assert not (system_root / gone).exists() and not (system_root / gone).is_symlink(), gone
    assert (system_root / "var/lib/weightwarden/weightwarden.db").read_bytes() == b"evidence"
    assert (system_root / "etc/weightwarden/config.toml").exists()
    for _ in range(2):
        run(UNINSTALL, system_root, "--purge")
    assert not (system_root / "var/lib/weightwarden").exists()
    assert not (system_root / "etc/weightwarden").exists()
    assert group_line(system_root) is None


def test_without_root_or_destdir_install_refuses(tmp_path: Path, wheelhouse: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: the refusal is for unprivileged users")
    result = subprocess.run(["bash", str(INSTALL), "--wheels", str(wheelhouse)], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "DESTDIR"}, timeout=60)
    assert result.returncode == 2 and "run as root" in result.stderr
