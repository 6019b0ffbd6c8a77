from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ENVIRONMENT_THAT_MOVES_FILES
from weightwarden.agent import paths


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME and none of the variables that move model caches or our own files."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ENVIRONMENT_THAT_MOVES_FILES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return home


@pytest.mark.parametrize(("euid", "expected"), [(0, "system"), (1000, "user")])
def test_detect_mode_follows_effective_uid(monkeypatch: pytest.MonkeyPatch, euid: int, expected: str) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    assert paths.detect_mode() == expected


def test_as_mode_rejects_anything_else() -> None:
    assert paths.as_mode("system") == "system"
    with pytest.raises(ValueError, match="'auto'"):
        paths.as_mode("auto")


def test_default_config_file_per_mode(home: Path) -> None:
    assert paths.default_config_file("user") == f"{home}/.config/weightwarden/config.toml"
    assert paths.default_config_file("system") == "/etc/weightwarden/config.toml"


def test_default_config_file_follows_xdg_config_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "conf"))
    assert paths.default_config_file("user") == f"{tmp_path}/conf/weightwarden/config.toml"


def test_relative_xdg_value_is_ignored(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/conf")
    assert paths.default_config_file("user") == f"{home}/.config/weightwarden/config.toml"


def test_weightwarden_config_env_overrides_both_modes(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("WEIGHTWARDEN_CONFIG", "~/my.toml")
    assert paths.default_config_file("user") == f"{home}/my.toml"
    assert paths.default_config_file("system") == f"{home}/my.toml"


def test_default_data_dir_per_mode(monkeypatch: pytest.MonkeyPatch, home: Path, tmp_path: Path) -> None:
    assert paths.default_data_dir("user") == f"{home}/.local/share/weightwarden"
    assert paths.default_data_dir("system") == "/var/lib/weightwarden"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert paths.default_data_dir("user") == f"{tmp_path}/data/weightwarden"


def test_weightwarden_data_dir_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEIGHTWARDEN_DATA_DIR", str(tmp_path / "state" / ""))
    assert paths.default_data_dir("user") == f"{tmp_path}/state"
    assert paths.default_data_dir("system") == f"{tmp_path}/state"


def test_default_protected_roots_without_overrides(home: Path) -> None:
    assert paths.default_protected_roots() == [
        f"{home}/models",
        f"{home}/.cache/huggingface",
        f"{home}/.ollama/models",
        f"{home}/.cache/torch",
        f"{home}/.cache/lm-studio",
        f"{home}/.lmstudio/models",
    ]


def test_default_protected_roots_follow_tool_variables(
    monkeypatch: pytest.MonkeyPatch, home: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", "~/hf")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert paths.default_protected_roots() == [
        f"{home}/models",
        f"{home}/hf",
        f"{tmp_path}/hub",
        f"{home}/.ollama/models",
        f"{tmp_path}/ollama",
        f"{tmp_path}/torch",
        f"{home}/.cache/lm-studio",
        f"{home}/.lmstudio/models",
    ]


def test_hugging_face_cache_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    roots = paths.default_protected_roots()
    assert f"{tmp_path}/cache/huggingface" in roots
    assert f"{tmp_path}/cache/torch" in roots


def test_default_protected_roots_drop_duplicates(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("HF_HOME", f"{home}/models")
    monkeypatch.setenv("HF_HUB_CACHE", f"{home}/models/")
    assert paths.default_protected_roots()[:2] == [f"{home}/models", f"{home}/.ollama/models"]


def test_default_watch_roots(home: Path, tmp_path: Path) -> None:
    assert paths.default_watch_roots() == [
        f"{home}/Downloads",
        f"{home}/Desktop",
        f"{home}/Documents",
        f"{tmp_path}/tmp",
        "/var/tmp",
        "/dev/shm",
    ]


def test_existing_keeps_only_directories_in_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    candidates = [str(tmp_path / name) for name in ("b", "missing", "file", "a", "link")]
    assert paths.existing(candidates) == [f"{tmp_path}/b", f"{tmp_path}/a", f"{tmp_path}/link"]


def test_unique_paths_normalises_before_comparing(home: Path) -> None:
    assert paths.unique_paths(["/a/b/", "/a//b", "/a/./b", "~/x", f"{home}/x"]) == ["/a/b", f"{home}/x"]


def test_drop_nested_keeps_outermost_roots() -> None:
    assert paths.drop_nested(["/a/b/c", "/a/bc", "/a/b", "/d", "/a/b"]) == ["/a/bc", "/a/b", "/d"]


def test_drop_nested_with_filesystem_root() -> None:
    assert paths.drop_nested(["/x", "/", "/y/z"]) == ["/"]
