"""Static checks of everything in installer/: shell scripts lint clean, plists and desktop entries are valid."""

from __future__ import annotations

import configparser
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.installer.conftest import INSTALLER

# The system installers (dev.sh and relink.sh are the development setup, checked by their own use).
SHELL_SCRIPTS = sorted([*(INSTALLER / "linux").glob("*.sh"), *(INSTALLER / "deb").glob("*.sh"),
                        *(INSTALLER / "macos").glob("*.sh"), *(INSTALLER / "deb").glob("p*inst"),
                        *(INSTALLER / "deb").glob("p*rm"), *(INSTALLER / "deb").glob("*.p*inst"),
                        *(INSTALLER / "deb").glob("*.p*rm")])


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(INSTALLER)))
def test_shell_scripts_parse_and_lint_clean(script: Path) -> None:
    shell = "sh" if script.read_text().startswith("#!/bin/sh") else "bash"
    subprocess.run([shell, "-n", str(script)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt install shellcheck)")
    result = subprocess.run(["shellcheck", "-s", shell, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_maintainer_scripts_are_posix_sh_and_honour_dpkg_root() -> None:
    for name in ("preinst", "postinst", "prerm", "postrm"):
        text = (INSTALLER / "deb" / name).read_text()
        assert text.startswith("#!/bin/sh\n"), name
        assert "set -e" in text, name
        assert "DPKG_ROOT" in text, name  # installs into a throwaway root must stay inside it


@pytest.mark.parametrize(("name", "kind"), [("org.weightwarden.agent.plist", "daemon"),
                                            ("org.weightwarden.app.plist", "agent")])
def test_macos_plists(name: str, kind: str) -> None:
    plist = plistlib.loads((INSTALLER / "macos" / name).read_bytes())
    assert plist["Label"] == name.removesuffix(".plist")
    program = plist["ProgramArguments"]
    assert program[0].startswith("/opt/weightwarden/venv/bin/")
    assert program[1:3] == (["agent", "--mode"] if kind == "daemon" else ["--mode", "system"])
    assert plist["RunAtLoad"] is True
    if kind == "daemon":
        assert plist["KeepAlive"] == {"SuccessfulExit": False}  # restarted after a crash, not after a stop
        assert plist["ExitTimeOut"] >= 60  # time to flush and sign the log
    else:
        assert plist["LimitLoadToSessionType"] == "Aqua" and "--minimized" in program


@pytest.mark.parametrize("name", ["weightwarden.desktop", "weightwarden-autostart.desktop"])
def test_desktop_entries(name: str) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(INSTALLER / "linux" / name)
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] == "weightwarden-gui"
    assert entry["Terminal"] == "false"
    if "autostart" in name:
        assert "--minimized" in entry["Exec"].split()
    else:
        assert entry["Categories"].endswith(";")
    if shutil.which("desktop-file-validate"):
        result = subprocess.run(["desktop-file-validate", str(INSTALLER / "linux" / name)], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stdout
