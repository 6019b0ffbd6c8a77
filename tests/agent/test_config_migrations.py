"""Config format migrations: older files brought forward with a backup and every value kept; newer refused."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from weightwarden.agent import config_migrations
from weightwarden.agent.config import ConfigError, default_config_text, load_config
from weightwarden.agent.config_migrations import (
    CURRENT_FORMAT,
    ConfigFormatError,
    ConfigTooNewError,
    migrate_file,
    migrate_text,
)

UNNUMBERED = ('# Weightwarden on the GPU box (hand-written)\n# second comment line\n[agent]\nname = "gpu-7"\n\n'
              '[inventory]\nextra_roots = ["/srv/models"]  # the team share\n\n[forward.siem]\ntype = "syslog"\n'
              'address = "siem.example.org:6514"\n')


def test_an_unnumbered_config_gets_the_current_format_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(UNNUMBERED)
    os.chmod(path, 0o640)
    report = migrate_file(str(path))
    text = path.read_text()
    assert (report.from_format, report.to_format) == (0, CURRENT_FORMAT)
    assert report.changes == ["0001_number_the_format: added format = 1 (the file had no format number)"]
    assert text.startswith("# Weightwarden on the GPU box (hand-written)\n# second comment line\n\n")
    document = tomllib.loads(text)
    assert document.pop("format") == CURRENT_FORMAT and document == tomllib.loads(UNNUMBERED)
    assert "# the team share" in text  # comments survive: the text is edited, not re-serialised
    assert Path(report.backup or "").read_text() == UNNUMBERED and report.backup == f"{path}.format0.bak"
    assert Path(report.backup or "").stat().st_mode & 0o777 == 0o640 and path.stat().st_mode & 0o777 == 0o640
    assert "migrated from format 0 to 1" in str(report) and report.backup in str(report)
    load_config(path)  # the result is a valid config

    again = migrate_file(str(path))  # current: nothing changes, no second backup
    assert again.backup is None and path.read_text() == text and "nothing to migrate" in str(again)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "config.toml.format0.bak"]


@pytest.mark.parametrize("text", ["", "[agent]\nname = \"x\"\n", "# only a comment", "format = 0\n"])
def test_edge_shapes_of_older_files(text: str) -> None:
    migrated, old, new, _changes = migrate_text(text)
    assert (old, new) == (0, CURRENT_FORMAT) and tomllib.loads(migrated)["format"] == CURRENT_FORMAT


def test_a_newer_format_is_refused_by_migration_and_by_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"format = {CURRENT_FORMAT + 1}\n[agent]\nname = \"x\"\n")
    before = path.read_bytes()
    with pytest.raises(ConfigTooNewError,
                       match=r"config format 2 is newer than this Weightwarden understands \(up to 1\)"):
        migrate_file(str(path))
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    with pytest.raises(ConfigError, match=r"config.toml:1: config format 2 is newer"):
        load_config(path)
    result = subprocess.run([sys.executable, "-m", "weightwarden.agent.config_migrations", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"weightwarden: {path}" in result.stderr and "newer" in result.stderr


@pytest.mark.parametrize("value", ['"1"', "-1", "true", "1.5"])
def test_a_format_that_is_not_a_whole_number_is_a_config_problem(tmp_path: Path, value: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"format = {value}\n")
    with pytest.raises(ConfigError, match="format must be a whole number"):
        load_config(path)
    with pytest.raises(ConfigFormatError):
        migrate_file(str(path))


def test_the_default_config_text_is_current_and_loads() -> None:
    assert tomllib.loads(default_config_text())["format"] == CURRENT_FORMAT
    assert tomllib.loads(default_config_text(commented=False))["format"] == CURRENT_FORMAT


def _rename_name_to_label(text: str) -> tuple[str, list[str], dict[tuple[str, ...], tuple[str, ...]]]:
    """A later format as a test case: [agent] name renamed to label (a text edit, as a real one would)."""
    return (text.replace("\nname = ", "\nlabel = ").replace("format = 1", "format = 2"), ["renamed name to label"],
            {("agent", "name"): ("agent", "label")})


def _forgetful(text: str) -> tuple[str, list[str], dict[tuple[str, ...], tuple[str, ...]]]:
    return text.replace('name = "gpu-7"\n', "").replace("format = 1", "format = 2"), ["dropped name"], {}


def test_steps_run_in_order_and_renamed_values_count_as_kept(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(UNNUMBERED)
    steps = [*config_migrations.MIGRATIONS, ("0002_label", _rename_name_to_label)]
    report = migrate_file(str(path), migrations=steps)
    assert (report.from_format, report.to_format) == (0, 2) and len(report.changes) == 2
    assert tomllib.loads(path.read_text())["agent"] == {"label": "gpu-7"}


def test_a_step_that_would_lose_a_value_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(UNNUMBERED)
    with pytest.raises(ConfigFormatError, match=r"would lose agent\.name; the file was left as it was"):
        migrate_file(str(path), migrations=[*config_migrations.MIGRATIONS, ("0002_forget", _forgetful)])
    assert path.read_text() == UNNUMBERED and list(tmp_path.iterdir()) == [path]


def test_invalid_toml_is_reported_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[agent\n")
    with pytest.raises(ConfigFormatError, match="invalid TOML, nothing migrated"):
        migrate_file(str(path))
    assert path.read_text() == "[agent\n"
