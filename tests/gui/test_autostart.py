"""The login autostart switch against a per-user entry and the machine-wide one the package installs."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightwarden.gui import autostart

SHIPPED_ENTRY = Path(__file__).resolve().parents[2] / "installer" / "linux" / "weightwarden-autostart.desktop"


@pytest.fixture
def dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    """An isolated HOME and XDG_CONFIG_HOME, and two XDG_CONFIG_DIRS of which the second is the machine's."""
    home, machine = tmp_path / "home", tmp_path / "etc-xdg"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"{tmp_path / 'empty'}:{machine}")
    name = "weightwarden-gui.desktop"
    return home / ".config" / "autostart" / name, machine / "autostart" / name


def install_machine_entry(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(SHIPPED_ENTRY.read_bytes())


def test_without_a_machine_entry_the_switch_writes_and_removes_a_user_entry(dirs: tuple[Path, Path]) -> None:
    user, _machine = dirs
    assert not autostart.is_enabled()
    assert autostart.set_enabled(True) == user
    assert autostart.is_enabled() and "Exec=weightwarden-gui --minimized" in user.read_text()
    assert "Hidden" not in user.read_text()
    autostart.set_enabled(True)  # again: same state
    assert autostart.is_enabled()
    autostart.set_enabled(False)
    assert not user.exists() and not autostart.is_enabled()


def test_off_hides_the_machine_entry_for_this_user_only(dirs: tuple[Path, Path]) -> None:
    user, machine = dirs
    install_machine_entry(machine)
    assert autostart.is_enabled() and autostart.system_entry() == machine
    autostart.set_enabled(False)
    assert "Hidden=true" in user.read_text().splitlines() and not autostart.is_enabled()
    assert machine.read_bytes() == SHIPPED_ENTRY.read_bytes()  # the package's file is left alone
    autostart.set_enabled(True)  # on again: the override goes, the machine entry starts the app
    assert not user.exists() and autostart.is_enabled()


def test_xdg_config_home_is_where_the_user_entry_goes(dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    _user, machine = dirs
    install_machine_entry(machine)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    autostart.set_enabled(False)
    assert (tmp_path / "cfg" / "autostart" / "weightwarden-gui.desktop").is_file() and not autostart.is_enabled()


def test_a_machine_entry_the_admin_disabled_needs_a_user_entry_to_start(dirs: tuple[Path, Path]) -> None:
    user, machine = dirs
    machine.parent.mkdir(parents=True)
    machine.write_text("[Desktop Entry]\nType=Application\nExec=weightwarden-gui\nHidden=true\n")
    assert not autostart.is_enabled()
    autostart.set_enabled(True)
    assert user.is_file() and autostart.is_enabled()
    autostart.set_enabled(False)
    assert not user.exists() and not autostart.is_enabled()


def test_a_gnome_disabled_user_entry_counts_as_off(dirs: tuple[Path, Path]) -> None:
    user, machine = dirs
    install_machine_entry(machine)
    user.parent.mkdir(parents=True)
    user.write_text("[Desktop Entry]\nType=Application\nExec=weightwarden-gui\nX-GNOME-Autostart-enabled=false\n")
    assert not autostart.is_enabled()
    autostart.set_enabled(True)
    assert not user.exists() and autostart.is_enabled()
