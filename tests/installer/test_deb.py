"""The Debian package: built by installer/deb/build.sh, inspected with dpkg-deb and lintian, and installed,
upgraded, downgraded and purged in throwaway roots (dpkg --root, maintainer scripts chrootless).

Most tests use a light build (`--no-deps`: Weightwarden alone in the venv, ~3 s) because the packaging
logic does not depend on what else is in the venv; `test_full_package_*` builds the real thing once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.installer.conftest import (
    INSTALLER,
    REPO,
    SYSTEM_PYTHON,
    build_wheel,
    group_line,
    make_root,
    newer_version,
    require,
    require_root,
    require_system_python,
)
from weightwarden.agent import __version__
from weightwarden.agent.store import Store

BUILD = INSTALLER / "deb" / "build.sh"


def build(wheels: Path, out: Path, *extra: str) -> Path:
    result = subprocess.run(["bash", str(BUILD), "--wheels", str(wheels), "--out", str(out), "--python",
                             SYSTEM_PYTHON, *extra], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    deb = Path(result.stdout.strip().splitlines()[-1])
    assert deb.exists()
    return deb


@pytest.fixture(scope="module")
def debs(wheelhouse: Path, newer_wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require("dpkg-deb", "dpkg")
    require_system_python()
    out = tmp_path_factory.mktemp("debs")
    return {"current": build(wheelhouse, out, "--no-deps", "--compression", "gzip"),
            "newer": build(newer_wheelhouse, out, "--no-deps", "--compression", "gzip")}


def dpkg(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # --force-script-chrootless: the scripts run on the host with DPKG_ROOT=root and must stay inside it.
    env = {k: v for k, v in os.environ.items() if k != "WEIGHTWARDEN_ALLOW_DOWNGRADE"}
    result = subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-not-root",
                             "--force-depends", "--force-unsafe-io", "--log=/dev/null", *args],
                            capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def installed_version(root: Path) -> str | None:
    result = dpkg(root, "-s", "weightwarden", check=False)
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    return lines.get("Version") if lines.get("Status") == "install ok installed" else None


@pytest.fixture
def root(tmp_path: Path) -> Path:
    require("groupadd", "groupdel")
    require_root()
    return make_root(tmp_path / "root")


def test_package_metadata(debs: dict[str, Path]) -> None:
    info = subprocess.run(["dpkg-deb", "-I", str(debs["current"])], capture_output=True, text=True, check=True).stdout
    assert f"Version: {__version__}-1" in info
    assert "Package: weightwarden" in info
    python = os.path.basename(os.path.realpath(SYSTEM_PYTHON))
    assert f"Depends: {python}," in info  # the venv's site-packages belongs to that minor version
    for script in ("preinst", "postinst", "prerm", "postrm", "conffiles", "md5sums"):
        assert f" {script} " in info or f" {script}\n" in info, script
    fields = subprocess.run(["dpkg-deb", "-f", str(debs["current"]), "Version"], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert fields == f"{__version__}-1"


def test_package_contents(debs: dict[str, Path]) -> None:
    listing = subprocess.run(["dpkg-deb", "-c", str(debs["current"])], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    entries = {line.split()[5].removeprefix("."): line for line in listing}
    for path in ("/lib/systemd/system/weightwarden.service", "/usr/share/applications/weightwarden.desktop",
                 "/etc/xdg/autostart/weightwarden-gui.desktop", "/opt/weightwarden/venv/bin/weightwarden",
                 "/opt/weightwarden/share/setup-system.sh", "/usr/share/doc/weightwarden/copyright",
                 "/opt/weightwarden/share/siem/elastic/index-template.json",
                 "/opt/weightwarden/share/siem/splunk/savedsearches.conf",
                 "/opt/weightwarden/share/siem/sigma/rules/evidence-tampered.yml",
                 "/opt/weightwarden/share/doc/siem.md"):
        assert path in entries, path
    assert all(" root/root " in line for line in listing)
    assert "-> /opt/weightwarden/venv/bin/weightwarden" in entries["/usr/bin/weightwarden"]
    # The installer and bytecode stay out: bytecode naming the build root would be wrong on the machine.
    assert not [p for p in entries if "__pycache__" in p or "/site-packages/pip/" in p]
    # Config and data are created by postinst, so dpkg never owns (and never replaces) them.
    assert not [p for p in entries if p.startswith(("/etc/weightwarden", "/var/lib/weightwarden"))]


def test_lintian_reports_only_reviewed_findings(debs: dict[str, Path]) -> None:
    """Every remaining tag is listed with its reason in installer/deb/lintian-overrides."""
    require("lintian")
    result = subprocess.run(["lintian", "--tag-display-limit", "0", "--suppress-tags",
                             "malformed-deb-archive", str(debs["current"])], capture_output=True, text=True,
                            timeout=300)
    findings = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert findings == [], "\n".join(findings)


def test_install_twice_sets_up_group_dirs_config_and_service(root: Path, debs: dict[str, Path]) -> None:
    for _ in range(2):
        dpkg(root, "-i", str(debs["current"]))
    assert installed_version(root) == f"{__version__}-1"
    line = group_line(root)
    assert line is not None
    gid = int(line.split(":")[2])
    for path, mode in (("etc/weightwarden", 0o750), ("var/lib/weightwarden", 0o750),
                       ("etc/weightwarden/config.toml", 0o640)):
        info = (root / path).stat()
        assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (mode, 0, gid), path
    wants = root / "etc/systemd/system/multi-user.target.wants/weightwarden.service"
    if wants.is_symlink():
        assert os.readlink(wants) == "/lib/systemd/system/weightwarden.service"
    # postinst compiled the bytecode with the final paths, not the throwaway root's.
    compiled = next((root / "opt/weightwarden/venv").rglob("__pycache__/*.pyc"), None)
    if compiled is not None:
        assert str(root).encode() not in compiled.read_bytes()


# A config as an admin wrote it before the file format was numbered (format 0): comments, their own keys.
OLDER_CONFIG = ('# gpu box, edited by the security team\n[agent]\nmode = "system"\nname = "gpu-box-7"\n\n'
                '[forward.siem]\ntype = "syslog"\naddress = "siem.example.org:6514"  # TLS\n')


def test_upgrade_keeps_config_and_data(root: Path, debs: dict[str, Path]) -> None:
    dpkg(root, "-i", str(debs["current"]))
    config = root / "etc/weightwarden/config.toml"
    config.write_text(OLDER_CONFIG)
    os.chmod(config, 0o640)
    database = root / "var/lib/weightwarden/weightwarden.db"
    database.write_bytes(b"evidence")
    (root / "etc/xdg/autostart/weightwarden-gui.desktop").write_text("[Desktop Entry]\nHidden=true\n")  # admin's
    for _ in range(2):
        dpkg(root, "--force-confold", "-i", str(debs["newer"]))
    assert installed_version(root) == f"{newer_version()}-1"
    # Brought forward to the current format once, with the admin's text, comments and values kept...
    migrated = config.read_text()
    stamp = ("\n# The config file format (Weightwarden migrates older files on upgrade; never edit by hand).\n"
             "format = 1\n\n")
    assert stamp in migrated and migrated.replace(stamp, "") == OLDER_CONFIG
    assert tomllib.loads(migrated)["forward"]["siem"]["address"] == "siem.example.org:6514"
    # ...and the original beside it, exactly as it was, as private as the config.
    (backup,) = config.parent.glob("config.toml.format0.bak*")
    assert backup.read_text() == OLDER_CONFIG and backup.stat().st_mode & 0o777 == 0o640
    assert database.read_bytes() == b"evidence"
    assert (root / "etc/xdg/autostart/weightwarden-gui.desktop").read_text() == "[Desktop Entry]\nHidden=true\n"
    assert (root / "var/lib/weightwarden/weightwarden.version").read_text() == f"{newer_version()}\n"


@pytest.mark.parametrize("how", ["over the newer package", "after the newer one was removed"])
def test_downgrade_refuses_with_a_clear_message(root: Path, debs: dict[str, Path], how: str) -> None:
    dpkg(root, "-i", str(debs["newer"]))
    (root / "var/lib/weightwarden/weightwarden.db").write_bytes(b"evidence")
    if how == "after the newer one was removed":
        dpkg(root, "-r", "weightwarden")
    result = dpkg(root, "-i", str(debs["current"]), check=False)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "weightwarden: refusing to downgrade" in message, message
    assert newer_version() in message
    expected = f"{newer_version()}-1" if how == "over the newer package" else None
    assert installed_version(root) == expected
    assert (root / "var/lib/weightwarden/weightwarden.db").read_bytes() == b"evidence"


def test_a_config_from_a_newer_version_stops_the_install_before_anything_changes(root: Path,
                                                                                  debs: dict[str, Path]) -> None:
    dpkg(root, "-i", str(debs["current"]))
    config = root / "etc/weightwarden/config.toml"
    newer = '# written by a future Weightwarden\nformat = 99\n\n[agent]\nmode = "system"\n'
    config.write_text(newer)
    before = (root / "opt/weightwarden/share/version").read_text()
    dpkg(root, "-r", "weightwarden")
    result = dpkg(root, "-i", str(debs["newer"]), check=False)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "refusing to downgrade: /etc/weightwarden/config.toml is in config format 99, newer than this package" \
        in message, message
    assert installed_version(root) is None and config.read_text() == newer
    assert before == f"{__version__}\n"


def test_a_newer_database_without_a_stamp_is_refused_at_the_first_start(root: Path, debs: dict[str, Path]) -> None:
    """The data came some other way (restored from a newer machine, no version stamp): preinst cannot know,
    so the agent's first start must refuse, clearly, and leave the database as it was."""
    data = root / "var/lib/weightwarden"
    data.mkdir(parents=True)
    store = Store(data / "weightwarden.db")
    store.db["_migrations"].insert({"name": "0099_from_a_newer_release", "applied": "2027-01-01"}, alter=True)
    store.close()
    before = (data / "weightwarden.db").read_bytes()
    dpkg(root, "-i", str(debs["current"]))
    (data / "weightwarden.version").unlink()  # as if restored without it: only the schema tells
    # The light package's venv has no dependencies: its code runs from this checkout's environment.
    env = {**os.environ, "WEIGHTWARDEN_DATA_DIR": str(data), "WEIGHTWARDEN_CONFIG": ""}
    started = subprocess.run([sys.executable, "-m", "weightwarden.agent.cli.main", "agent", "--mode", "user"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert started.returncode == 2
    assert "(0099_from_a_newer_release): it was written by a newer Weightwarden; refusing to downgrade it" \
        in started.stderr
    assert (data / "weightwarden.db").read_bytes() == before


def test_remove_keeps_config_and_data_and_purge_deletes_them(root: Path, debs: dict[str, Path]) -> None:
    dpkg(root, "-i", str(debs["current"]))
    (root / "var/lib/weightwarden/weightwarden.db").write_bytes(b"evidence")
    dpkg(root, "-r", "weightwarden")
    assert not (root / "opt/weightwarden/venv").exists()
    assert not (root / "usr/bin/weightwarden").is_symlink()
    assert (root / "var/lib/weightwarden/weightwarden.db").read_bytes() == b"evidence"
    assert (root / "etc/weightwarden/config.toml").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/weightwarden.service").is_symlink()
    dpkg(root, "-P", "weightwarden")
    assert not (root / "var/lib/weightwarden").exists()
    assert not (root / "etc/weightwarden").exists()
    assert not (root / "opt/weightwarden").exists()
    assert group_line(root) is None
    dpkg(root, "-P", "weightwarden")  # purging what is gone is fine


@pytest.fixture(scope="module")
def full_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real package: every dependency in the venv (PySide6 alone is ~700 MB unpacked).

    Wheels come from pip's configured indexes (`pip wheel`, ~300 MB: most of the ~2 minutes this takes on
    two cores; $WEIGHTWARDEN_TEST_WHEELS=DIR reuses a wheelhouse instead); zstd keeps compression to
    seconds (the release build uses xz: minutes).
    """
    require("dpkg-deb", "dpkg")
    require_system_python()
    wheels = tmp_path_factory.mktemp("full-wheels")
    cached = os.environ.get("WEIGHTWARDEN_TEST_WHEELS", "")
    if cached and Path(cached).is_dir():
        # A wheelhouse kept between runs (`pip wheel -w DIR .`) saves the download; never its own
        # weightwarden wheel, which would be stale: this checkout's is built fresh.
        for wheel in Path(cached).glob("*.whl"):
            if not wheel.name.startswith("weightwarden-"):
                shutil.copy2(wheel, wheels / wheel.name)
        build_wheel(REPO, wheels)
    else:
        # The test interpreter and the system one share the wheel tags CI cares about (cp311 on Debian 12).
        fetched = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheels), str(REPO)],
                                 capture_output=True, text=True, timeout=600)
        if fetched.returncode != 0:
            pytest.skip(f"dependencies not available from the configured indexes: {fetched.stderr.strip()[-300:]}")
    return build(wheels, tmp_path_factory.mktemp("full-deb"), "--compression", "zstd")


@pytest.mark.package
def test_full_package_installs_and_its_agent_runs(full_deb: Path, tmp_path: Path) -> None:
    require("groupadd")
    require_root()
    root = make_root(tmp_path / "root")
    dpkg(root, "-i", str(full_deb))
    python = root / "opt/weightwarden/venv/bin/python"
    env = {**os.environ, "WEIGHTWARDEN_DATA_DIR": str(tmp_path / "data"), "WEIGHTWARDEN_CONFIG": "",
           "QT_QPA_PLATFORM": "offscreen"}
    version = subprocess.run([str(python), "-m", "weightwarden.agent.cli.main", "--version"], capture_output=True,
                             text=True, env=env, timeout=120)
    assert version.stdout.strip() == f"weightwarden {__version__}", version.stderr
    check = subprocess.run([str(python), "-m", "weightwarden.agent.cli.main", "config", "check",
                            str(root / "etc/weightwarden/config.toml")], capture_output=True, text=True, env=env,
                           timeout=120)
    assert check.returncode == 0, check.stderr
    gui = subprocess.run([str(python), "-c", "import weightwarden.gui.main, PySide6.QtWidgets"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert gui.returncode == 0, gui.stderr

