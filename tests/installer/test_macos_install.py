"""installer/macos/install.sh run on Linux against a DESTDIR, with the macOS-only tools replaced by small
stubs on PATH: launchctl records its calls, dscl/dseditgroup keep a group table in a file, plutil checks
the plists with plistlib, uname says Darwin. What it proves: the layout, idempotence, config migration,
the downgrade refusal and the launchd calls. What it cannot: launchd really loading the jobs (macOS only).
"""

from __future__ import annotations

import os
import plistlib
import subprocess
from pathlib import Path

import pytest

from tests.installer.conftest import INSTALLER, SYSTEM_PYTHON, newer_version, require_root, require_system_python, tree
from weightwarden.agent import __version__

INSTALL = INSTALLER / "macos" / "install.sh"
SUPPORT = "Library/Application Support/Weightwarden"

STUBS = {
    "uname": '[ "$1" = -s ] && { echo Darwin; exit 0; }; exec /usr/bin/uname "$@"',
    "launchctl": 'printf "%s\\n" "$*" >>"$STUB_DIR/launchctl.log"',
    "dseditgroup": '# dseditgroup -o create -i GID -r DESCRIPTION NAME\n'
                   'eval "name=\\${$#}"; printf "%s\\n" "$4" >"$STUB_DIR/groups/$name"; '
                   'printf "%s\\n" "$*" >>"$STUB_DIR/dseditgroup.log"',
    "dscl": 'case "$2" in\n'
            '  -read) name=${3#/Groups/}; [ -f "$STUB_DIR/groups/$name" ] || exit 56;'
            ' echo "PrimaryGroupID: $(cat "$STUB_DIR/groups/$name")" ;;\n'
            '  -list) echo "staff 20"; echo "admin 80"; echo "_taskgated 401" ;;\n'
            '  -delete) rm -f "$STUB_DIR/groups/${3#/Groups/}" ;;\n'
            '  *) exit 2 ;;\nesac',
    "plutil": '[ "$1" = -lint ] || exit 2; shift\n'
              f'exec {SYSTEM_PYTHON} -c \'import plistlib, sys\n'
              'for name in sys.argv[1:]:\n    with open(name, "rb") as f: plistlib.load(f)\' "$@"',
}


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    folder = tmp_path / "stubs"
    (folder / "groups").mkdir(parents=True)
    for name, body in STUBS.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return folder


def run(root: Path, stubs: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DESTDIR": str(root), "STUB_DIR": str(stubs), "PATH": f"{stubs}:{os.environ['PATH']}"}
    env.pop("WEIGHTWARDEN_ALLOW_DOWNGRADE", None)
    result = subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env=env, timeout=180)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def install(root: Path, stubs: Path, wheels: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(root, stubs, "--wheels", str(wheels), "--no-deps", "--python", SYSTEM_PYTHON, check=check)


@pytest.fixture(autouse=True)
def _needs() -> None:
    require_root()  # the script refuses to run without sudo, and sets root ownership
    require_system_python()


def launchctl_calls(stubs: Path) -> list[str]:
    log = stubs / "launchctl.log"
    return log.read_text().splitlines() if log.exists() else []


def test_install_upgrade_downgrade_uninstall(tmp_path: Path, stubs: Path, wheelhouse: Path) -> None:
    """One root through a machine's life (each install builds a venv: a few seconds, so one scenario)."""
    root = tmp_path / "root"
    install(root, stubs, wheelhouse)
    daemon = root / "Library/LaunchDaemons/org.weightwarden.agent.plist"
    agent = root / "Library/LaunchAgents/org.weightwarden.app.plist"
    for plist_path in (daemon, agent):
        plist = plistlib.loads(plist_path.read_bytes())
        program = Path(plist["ProgramArguments"][0])
        assert (root / program.relative_to("/")).is_file(), program  # the program the job runs was installed
        assert plist["EnvironmentVariables"]["WEIGHTWARDEN_DATA_DIR"] == f"/{SUPPORT}/data"
        info = plist_path.stat()
        assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o644, 0, 0)
    bootstrap = ["bootout system /Library/LaunchDaemons/org.weightwarden.agent.plist",
                 "bootstrap system /Library/LaunchDaemons/org.weightwarden.agent.plist"]
    assert launchctl_calls(stubs) == bootstrap
    gid = int((stubs / "groups" / "weightwarden-admin").read_text())
    assert gid == 402  # the next free id after the highest in 400-499
    for folder in (root / SUPPORT, root / SUPPORT / "data"):
        info = folder.stat()
        assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o750, 0, gid)
    config = root / SUPPORT / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o640 and "format = 1" in config.read_text()
    assert (root / SUPPORT / "data/weightwarden.version").read_text() == f"{__version__}\n"
    assert os.readlink(root / "usr/local/bin/weightwarden") == "/opt/weightwarden/venv/bin/weightwarden"
    script = (root / "opt/weightwarden/venv/bin/weightwarden").read_text()
    assert script.startswith("#!/opt/weightwarden/venv/bin/python") and str(root) not in script

    # Again, over an older config and existing data: same files, group created once, config brought forward.
    older = '[agent]\nmode = "system"\nname = "mac-studio-3"\n'
    config.write_text(older)
    (root / SUPPORT / "data/weightwarden.db").write_bytes(b"evidence")
    before = tree(root, skip=lambda p: "__pycache__" in p.parts or p.name.startswith("config.toml"))
    result = install(root, stubs, wheelhouse)
    assert tree(root, skip=lambda p: "__pycache__" in p.parts or p.name.startswith("config.toml")) == before
    assert len((stubs / "dseditgroup.log").read_text().splitlines()) == 1
    assert launchctl_calls(stubs) == bootstrap * 2  # the daemon restarted on the new code
    assert "config migrated from format 0 to 1" in result.stderr
    assert 'name = "mac-studio-3"' in config.read_text() and "format = 1" in config.read_text()
    assert (root / SUPPORT / "config.toml.format0.bak").read_text() == older
    assert (root / SUPPORT / "data/weightwarden.db").read_bytes() == b"evidence"

    # An older version over data a newer one used: refused before anything changes.
    (root / SUPPORT / "data/weightwarden.version").write_text(f"{newer_version()}\n")
    before = tree(root)
    result = install(root, stubs, wheelhouse, check=False)
    assert result.returncode == 1
    assert f"refusing to downgrade: data was last used by Weightwarden {newer_version()}" in result.stderr
    assert tree(root) == before and launchctl_calls(stubs) == bootstrap * 2

    for _ in range(2):  # uninstall twice: the program goes, config and data stay
        run(root, stubs, "--uninstall")
        assert not (root / "opt/weightwarden").exists() and not daemon.exists() and not agent.exists()
        assert config.exists() and (root / SUPPORT / "data/weightwarden.db").exists()
    assert launchctl_calls(stubs)[-1] == bootstrap[0]
    run(root, stubs, "--uninstall", "--purge")
    assert not (root / SUPPORT).exists() and not (stubs / "groups" / "weightwarden-admin").exists()
