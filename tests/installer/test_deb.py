"""The Debian packages (weightwarden-agent, weightwarden-app and the transitional weightwarden): built by
installer/deb/build.sh, inspected with dpkg-deb and lintian, and installed, upgraded (from the former single
package too), downgraded and purged in throwaway roots (dpkg --root, maintainer scripts chrootless).

Most tests use a light build (`--no-deps`: Weightwarden alone in the venv, ~3 s) because the packaging
logic does not depend on what else is in the venv; `test_full_packages_*` builds the real ones once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
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
Debs = dict[str, dict[str, Path]]  # "current"/"newer" -> package name -> .deb
PACKAGES = ("weightwarden-agent", "weightwarden-app", "weightwarden")


def build(wheels: Path | None, out: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Path]:
    """The three packages build.sh makes, by package name."""
    source = ["--wheels", str(wheels)] if wheels else []
    result = subprocess.run(["bash", str(BUILD), *source, "--out", str(out), "--python", SYSTEM_PYTHON, *extra],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr
    built = {Path(line).name.split("_")[0]: Path(line) for line in result.stdout.strip().splitlines()}
    assert sorted(built) == sorted(PACKAGES) and all(deb.exists() for deb in built.values())
    return built


@pytest.fixture(scope="module")
def debs(wheelhouse: Path, newer_wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Debs:
    require("dpkg-deb", "dpkg")
    require_system_python()
    return {"current": build(wheelhouse, tmp_path_factory.mktemp("debs"), "--no-deps", "--compression", "gzip"),
            "newer": build(newer_wheelhouse, tmp_path_factory.mktemp("debs"), "--no-deps", "--compression", "gzip")}


def both(built: dict[str, Path]) -> list[str]:
    """The agent and the app, as a workstation installs them (one dpkg call, the agent first)."""
    return [str(built["weightwarden-agent"]), str(built["weightwarden-app"])]


def dpkg(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # --force-script-chrootless: the scripts run on the host with DPKG_ROOT=root and must stay inside it.
    env = {k: v for k, v in os.environ.items() if k != "WEIGHTWARDEN_ALLOW_DOWNGRADE"}
    result = subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-not-root",
                             "--force-depends", "--force-unsafe-io", "--log=/dev/null", *args],
                            capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def installed_version(root: Path, package: str = "weightwarden-agent") -> str | None:
    result = dpkg(root, "-s", package, check=False)
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    return lines.get("Version") if lines.get("Status") == "install ok installed" else None


@pytest.fixture
def root(tmp_path: Path) -> Path:
    require("groupadd", "groupdel")
    require_root()
    return make_root(tmp_path / "root")


def control(deb: Path) -> dict[str, str]:
    text = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if line[:1] != " ")}


def members(deb: Path) -> set[str]:
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True).stdout
    names = {found.group(1) for line in info.splitlines()
             if (found := re.match(r"\s+\d+ bytes,\s+\d+ lines\s+\*?\s*(\S+)", line))}
    return names - {"control"}


def test_package_metadata(debs: Debs) -> None:
    version = f"{__version__}-1"
    agent, app, transitional = (control(debs["current"][name]) for name in PACKAGES)
    assert {agent["Package"], app["Package"], transitional["Package"]} == set(PACKAGES)
    assert agent["Version"] == app["Version"] == transitional["Version"] == version
    python = os.path.basename(os.path.realpath(SYSTEM_PYTHON))
    assert agent["Depends"].startswith(f"{python},")  # the venv's site-packages belongs to that minor version
    assert "libegl1" not in agent["Depends"] and "libegl1" in app["Depends"]  # Qt's libraries: the app's
    # One venv, two owners: the app runs only on the agent of exactly its version.
    assert app["Depends"].startswith(f"weightwarden-agent (= {version}),")
    for fields in (agent, app):  # taking over the former single package's files
        assert fields["Replaces"] == fields["Breaks"] == f"weightwarden (<< {version})"
    assert transitional["Architecture"] == "all" and transitional["Section"] == "oldlibs"
    assert transitional["Depends"] == f"weightwarden-agent (>= {version}), weightwarden-app (>= {version})"
    assert members(debs["current"]["weightwarden-agent"]) == {"preinst", "postinst", "prerm", "postrm", "md5sums"}
    assert members(debs["current"]["weightwarden-app"]) == {"postinst", "prerm", "conffiles", "md5sums"}
    # No maintainer scripts: the former package's postrm (purge deletes the data) is gone with its upgrade.
    assert members(debs["current"]["weightwarden"]) == {"md5sums"}


def listing(deb: Path) -> dict[str, str]:
    lines = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert all(" root/root " in line for line in lines)
    return {line.split()[5].removeprefix("."): line for line in lines}


def test_package_contents(debs: Debs) -> None:
    entries = listing(debs["current"]["weightwarden-agent"])
    app = listing(debs["current"]["weightwarden-app"])
    site = "/opt/weightwarden/venv/lib/python3"
    for path in ("/lib/systemd/system/weightwarden.service", "/opt/weightwarden/venv/bin/weightwarden",
                 "/opt/weightwarden/share/setup-system.sh", "/usr/share/doc/weightwarden-agent/copyright",
                 "/opt/weightwarden/share/siem/elastic/index-template.json",
                 "/opt/weightwarden/share/siem/splunk/savedsearches.conf",
                 "/opt/weightwarden/share/siem/sigma/rules/evidence-tampered.yml",
                 "/opt/weightwarden/share/doc/siem.md"):
        assert path in entries, path
    for path in ("/usr/share/applications/weightwarden.desktop", "/etc/xdg/autostart/weightwarden-gui.desktop",
                 "/opt/weightwarden/venv/bin/weightwarden-gui", "/usr/share/doc/weightwarden-app/copyright"):
        assert path in app and path not in entries, path
    assert "-> /opt/weightwarden/venv/bin/weightwarden-gui" in app["/usr/bin/weightwarden-gui"]
    assert [p for p in app if p.startswith(site) and "/site-packages/weightwarden/gui/" in p]
    assert not [p for p in entries if "/site-packages/weightwarden/gui" in p or "weightwarden-gui" in p]
    # Two owners of one venv: no file in both (dpkg would refuse the second without Replaces between them).
    files = {p for p, line in entries.items() if not line.startswith("d")}
    assert files & {p for p, line in app.items() if not line.startswith("d")} == set()
    assert "-> /opt/weightwarden/venv/bin/weightwarden" in entries["/usr/bin/weightwarden"]
    # The installer and bytecode stay out: bytecode naming the build root would be wrong on the machine.
    assert not [p for p in entries if "__pycache__" in p or "/site-packages/pip/" in p]
    # Config and data are created by postinst, so dpkg never owns (and never replaces) them.
    assert not [p for p in entries if p.startswith(("/etc/weightwarden", "/var/lib/weightwarden"))]


def lintian_findings(*debs: Path, light: bool = False) -> list[str]:
    """lintian's errors and warnings; every tag that remains is listed with its reason in
    installer/deb/PACKAGE.lintian-overrides. The light packages lack the wheels that the file-by-file
    overrides name (numpy, PySide6), so those overrides match nothing there (mismatched-override)."""
    require("lintian")
    result = subprocess.run(["lintian", "--tag-display-limit", "0", "--suppress-tags", "malformed-deb-archive",
                             *map(str, debs)], capture_output=True, text=True, timeout=900)
    return [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")
            and not (light and line.split()[2] == "mismatched-override")]


def test_lintian_reports_only_reviewed_findings(debs: Debs) -> None:
    findings = lintian_findings(*debs["current"].values(), light=True)
    assert findings == [], "\n".join(findings)


def test_the_same_inputs_build_the_same_packages(wheelhouse: Path, tmp_path: Path) -> None:
    """Byte for byte: file times clamped to SOURCE_DATE_EPOCH, no build path in any file (RECORD included),
    sorted md5sums. The release build (xz, the locked dependencies) is compared the same way in
    docs/install.md; this one runs on every test run with the light build."""
    require("dpkg-deb")
    require_system_python()
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1780000000"}
    first, second = (build(wheelhouse, tmp_path / name, "--no-deps", "--compression", "xz", env=env)
                     for name in ("first", "second"))
    for name in PACKAGES:
        assert first[name].read_bytes() == second[name].read_bytes(), name
    assert "1780000000" not in first["weightwarden-agent"].name  # (the epoch is in the times, not the name)
    listed = listing(first["weightwarden-agent"])["/opt/weightwarden/venv/bin/weightwarden"]
    assert " 2026-05-28 " in listed, listed


def test_install_twice_sets_up_group_dirs_config_and_service(root: Path, debs: Debs) -> None:
    for _ in range(2):
        dpkg(root, "-i", *both(debs["current"]))
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


def test_upgrade_keeps_config_and_data(root: Path, debs: Debs) -> None:
    dpkg(root, "-i", *both(debs["current"]))
    config = root / "etc/weightwarden/config.toml"
    config.write_text(OLDER_CONFIG)
    os.chmod(config, 0o640)
    database = root / "var/lib/weightwarden/weightwarden.db"
    database.write_bytes(b"evidence")
    (root / "etc/xdg/autostart/weightwarden-gui.desktop").write_text("[Desktop Entry]\nHidden=true\n")  # admin's
    for _ in range(2):
        dpkg(root, "--force-confold", "-i", *both(debs["newer"]))
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
def test_downgrade_refuses_with_a_clear_message(root: Path, debs: Debs, how: str) -> None:
    dpkg(root, "-i", *both(debs["newer"]))
    (root / "var/lib/weightwarden/weightwarden.db").write_bytes(b"evidence")
    if how == "after the newer one was removed":
        dpkg(root, "-r", "weightwarden-app", "weightwarden-agent")
    result = dpkg(root, "-i", *both(debs["current"]), check=False)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "weightwarden: refusing to downgrade" in message, message
    assert newer_version() in message
    expected = f"{newer_version()}-1" if how == "over the newer package" else None
    assert installed_version(root) == expected
    assert (root / "var/lib/weightwarden/weightwarden.db").read_bytes() == b"evidence"


def test_a_config_from_a_newer_version_stops_the_install_before_anything_changes(root: Path, debs: Debs) -> None:
    dpkg(root, "-i", *both(debs["current"]))
    config = root / "etc/weightwarden/config.toml"
    newer = '# written by a future Weightwarden\nformat = 99\n\n[agent]\nmode = "system"\n'
    config.write_text(newer)
    before = (root / "opt/weightwarden/share/version").read_text()
    dpkg(root, "-r", "weightwarden-app", "weightwarden-agent")
    result = dpkg(root, "-i", *both(debs["newer"]), check=False)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "refusing to downgrade: /etc/weightwarden/config.toml is in config format 99, newer than this package" \
        in message, message
    assert installed_version(root) is None and config.read_text() == newer
    assert before == f"{__version__}\n"


def test_a_newer_database_without_a_stamp_is_refused_at_the_first_start(root: Path, debs: Debs) -> None:
    """The data came some other way (restored from a newer machine, no version stamp): preinst cannot know,
    so the agent's first start must refuse, clearly, and leave the database as it was."""
    data = root / "var/lib/weightwarden"
    data.mkdir(parents=True)
    store = Store(data / "weightwarden.db")
    store.db["_migrations"].insert({"name": "0099_from_a_newer_release", "applied": "2027-01-01"}, alter=True)
    store.close()
    before = (data / "weightwarden.db").read_bytes()
    dpkg(root, "-i", *both(debs["current"]))
    (data / "weightwarden.version").unlink()  # as if restored without it: only the schema tells
    # The light package's venv has no dependencies: its code runs from this checkout's environment.
    env = {**os.environ, "WEIGHTWARDEN_DATA_DIR": str(data), "WEIGHTWARDEN_CONFIG": ""}
    started = subprocess.run([sys.executable, "-m", "weightwarden.agent.cli.main", "agent", "--mode", "user"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert started.returncode == 2
    assert "(0099_from_a_newer_release): it was written by a newer Weightwarden; refusing to downgrade it" \
        in started.stderr
    assert (data / "weightwarden.db").read_bytes() == before


def test_remove_keeps_config_and_data_and_purge_deletes_them(root: Path, debs: Debs) -> None:
    dpkg(root, "-i", *both(debs["current"]))
    (root / "var/lib/weightwarden/weightwarden.db").write_bytes(b"evidence")
    dpkg(root, "-r", "weightwarden-app", "weightwarden-agent")
    assert not (root / "opt/weightwarden/venv").exists()
    assert not (root / "usr/bin/weightwarden").is_symlink()
    assert (root / "var/lib/weightwarden/weightwarden.db").read_bytes() == b"evidence"
    assert (root / "etc/weightwarden/config.toml").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/weightwarden.service").is_symlink()
    dpkg(root, "-P", "weightwarden-app", "weightwarden-agent")
    assert not (root / "var/lib/weightwarden").exists()
    assert not (root / "etc/weightwarden").exists()
    assert not (root / "opt/weightwarden").exists()
    assert group_line(root) is None
    dpkg(root, "-P", "weightwarden-app", "weightwarden-agent")  # purging what is gone is fine


@pytest.fixture(scope="module")
def full_debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real packages, as released: every dependency exactly as installer/deb/requirements.lock pins it
    (hash-checked), from pip's configured indexes (~130 MB of wheels, cached by pip after the first run);
    zstd keeps compression to seconds (the release build uses xz: minutes)."""
    require("dpkg-deb", "dpkg")
    require_system_python()
    probe = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d",
                            str(tmp_path_factory.mktemp("probe")), "tabulate==0.10.0"], capture_output=True,
                           text=True, timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"no package index reachable: {probe.stderr.strip()[-300:]}")
    return build(None, tmp_path_factory.mktemp("full-deb"), "--compression", "zstd")


def run_in(root: Path, tmp_path: Path, *code: str) -> subprocess.CompletedProcess[str]:
    python = root / "opt/weightwarden/venv/bin/python"
    env = {**os.environ, "WEIGHTWARDEN_DATA_DIR": str(tmp_path / "data"), "WEIGHTWARDEN_CONFIG": "",
           "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([str(python), *code], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.package
def test_full_packages_install_the_headless_agent_then_the_app(full_debs: dict[str, Path], tmp_path: Path) -> None:
    require("groupadd")
    require_root()
    # Clean with the real wheels inside: no override for embedded libraries, VCS files or modes (build.sh
    # mends those), so a dependency that brings a new one fails here.
    findings = lintian_findings(*full_debs.values())
    assert findings == [], "\n".join(findings)
    # The targets (docs/install.md has the measured figures): the agent under 100 MB, the app 250 MB.
    assert int(control(full_debs["weightwarden-agent"])["Installed-Size"]) < 100 * 1024
    assert int(control(full_debs["weightwarden-app"])["Installed-Size"]) < 250 * 1024
    root = make_root(tmp_path / "root")
    dpkg(root, "-i", str(full_debs["weightwarden-agent"]))  # a GPU server: the agent alone
    version = run_in(root, tmp_path, "-m", "weightwarden.agent.cli.main", "--version")
    assert version.stdout.strip() == f"weightwarden {__version__}", version.stderr
    check = run_in(root, tmp_path, "-m", "weightwarden.agent.cli.main", "config", "check",
                   str(root / "etc/weightwarden/config.toml"))
    assert check.returncode == 0, check.stderr
    no_qt = run_in(root, tmp_path, "-c", "import PySide6")
    assert no_qt.returncode != 0 and "No module named 'PySide6'" in no_qt.stderr
    assert not (root / "usr/bin/weightwarden-gui").is_symlink()
    # A workstation: the app on top; its window opens offscreen on the shipped (trimmed, stripped) Qt.
    dpkg(root, "-i", str(full_debs["weightwarden-app"]))
    gui = run_in(root, tmp_path, "-c", "import weightwarden.gui.main\n"
                 "from PySide6.QtWidgets import QApplication, QLabel\n"
                 "app = QApplication([]); label = QLabel('ok'); label.show(); app.processEvents()\n"
                 "print(label.text(), app.platformName())")
    assert gui.returncode == 0 and gui.stdout.split() == ["ok", "offscreen"], gui.stderr
    # ...and goes again without taking the agent's files with it.
    dpkg(root, "-r", "weightwarden-app")
    assert run_in(root, tmp_path, "-m", "weightwarden.agent.cli.main", "--version").returncode == 0
    assert list((root / "opt/weightwarden/venv/lib").glob("python3*/site-packages/PySide6")) == []


# The last commit whose installer/deb/build.sh made the single `weightwarden` package (main's HEAD when the
# split was made): the package fleets run today, built from that source for the upgrade test.
SINGLE_PACKAGE_COMMIT = "1121c1b6fe98755aea300063f1f1020eb16384e9"


@pytest.fixture(scope="module")
def single_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Today's single package (light build, as `debs`), from the source at SINGLE_PACKAGE_COMMIT."""
    require("dpkg-deb", "dpkg", "git")
    require_system_python()
    source = tmp_path_factory.mktemp("single-source")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", SINGLE_PACKAGE_COMMIT],
                             capture_output=True, timeout=120)
    if archive.returncode != 0:
        pytest.skip(f"{SINGLE_PACKAGE_COMMIT[:12]} is not in this clone (shallow?): {archive.stderr.decode()[-200:]}")
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    wheels = tmp_path_factory.mktemp("single-wheels")
    build_wheel(source, wheels)
    result = subprocess.run(["bash", str(source / "installer/deb/build.sh"), "--wheels", str(wheels), "--out",
                             str(tmp_path_factory.mktemp("single-deb")), "--python", SYSTEM_PYTHON, "--no-deps",
                             "--compression", "gzip"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    deb = Path(result.stdout.strip().splitlines()[-1])
    assert control(deb)["Package"] == "weightwarden" and control(deb)["Version"] == f"{__version__}-1"
    return deb


def run_agent_once(root: Path, tmp_path: Path) -> None:
    """The agent (this checkout's code: the light packages' venvs hold no dependencies) on the root's data
    dir until it has started, then stopped with SIGTERM: it makes its keys, chains its records and signs."""
    env = {**os.environ, "WEIGHTWARDEN_DATA_DIR": str(root / "var/lib/weightwarden"), "WEIGHTWARDEN_CONFIG": "",
           "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir(exist_ok=True)
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        agent = subprocess.Popen([sys.executable, "-m", "weightwarden.agent.cli.main", "agent", "--mode", "user"],
                                 stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while "watching" not in log.read_text() and agent.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "watching" in log.read_text(), log.read_text()
        finally:
            agent.terminate()
            assert agent.wait(timeout=120) == 0, log.read_text()


def verified(root: Path) -> dict[str, object]:
    env = {**os.environ, "WEIGHTWARDEN_DATA_DIR": str(root / "var/lib/weightwarden"), "WEIGHTWARDEN_CONFIG": ""}
    result = subprocess.run([sys.executable, "-m", "weightwarden.agent.cli.main", "verify", "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    report: dict[str, object] = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"] and report["signatures_checked"], result.stdout + result.stderr
    return report


@pytest.mark.parametrize("order", ["agent first", "transitional first"])
def test_upgrade_from_the_single_package_keeps_config_data_keys_and_chain(
        root: Path, tmp_path: Path, single_deb: Path, debs: Debs, order: str) -> None:
    dpkg(root, "-i", str(single_deb))
    assert installed_version(root, "weightwarden") == f"{__version__}-1"
    config = root / "etc/weightwarden/config.toml"
    config.write_text(config.read_text() + '\n# the admin\'s own note\n')
    autostart = root / "etc/xdg/autostart/weightwarden-gui.desktop"
    autostart.write_text("[Desktop Entry]\nHidden=true\n")  # the admin switched the app off at login
    run_agent_once(root, tmp_path)
    data = root / "var/lib/weightwarden"
    kept = {path: path.read_bytes() for path in (config, autostart, data / "weightwarden.db",
                                                 data / "agent_key.pem", data / "agent_key.pub.pem")}
    before = verified(root)
    newer = debs["newer"]
    names = ["weightwarden-agent", "weightwarden-app", "weightwarden"]
    if order == "transitional first":
        names.reverse()
    # One dpkg call, as apt hands over an upgrade that pulls in the new packages (apt passes
    # --auto-deconfigure: the old package, broken by the new ones until it is upgraded, is deconfigured).
    dpkg(root, "--force-confold", "--auto-deconfigure", "-i", *(str(newer[name]) for name in names))
    for package in PACKAGES:
        assert installed_version(root, package) == f"{newer_version()}-1", package
    assert {path: path.read_bytes() for path in kept} == kept
    assert (data / "agent_key.pem").stat().st_mode & 0o777 == 0o600
    assert verified(root) == before
    assert (data / "weightwarden.version").read_text() == f"{newer_version()}\n"
    line = group_line(root)
    assert line is not None and (data.stat().st_gid, data.stat().st_mode & 0o777) == (int(line.split(":")[2]), 0o750)
    wants = root / "etc/systemd/system/multi-user.target.wants/weightwarden.service"
    if wants.is_symlink():  # systemctl --root enables it where systemd is installed
        assert os.readlink(wants) == "/lib/systemd/system/weightwarden.service"
    assert (root / "usr/bin/weightwarden").is_symlink() and (root / "usr/bin/weightwarden-gui").is_symlink()
    # The transitional package goes with nothing of the agent's: purging it deletes no evidence.
    dpkg(root, "-P", "weightwarden")
    assert {path: path.read_bytes() for path in kept} == kept
    assert installed_version(root) == f"{newer_version()}-1"
    assert (root / "opt/weightwarden/venv/bin/weightwarden").exists()
