"""The Scope from account and environment files the tests write (system mode) or the config (user mode)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from weightwarden.agent.config import default_config, load_config
from weightwarden.agent.paths import is_inside
from weightwarden.agent.scope import SystemFiles, compute_scope
from weightwarden.agent.scope import accounts as accounts_module
from weightwarden.agent.scope.accounts import AccountFiles


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, Path]:
    """Two people (alice, bob), a nologin service, the ollama service account, and their files."""
    etc, homes = tmp_path / "etc", tmp_path / "home"
    etc.mkdir()
    paths = {"etc": etc, **{name: homes / name for name in ("alice", "bob", "svc")},
             "ollama": tmp_path / "usr-share-ollama", "units": tmp_path / "units"}
    for name in ("alice", "bob", "svc", "ollama"):
        paths[name].mkdir(parents=True)
    (etc / "passwd").write_text(
        "daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"
        f"ollama:x:998:998::{paths['ollama']}:/bin/false\n"
        f"alice:x:1001:1001::{paths['alice']}:/bin/bash\n"
        f"bob:x:1002:1002::{paths['bob']}:/bin/sh\n"
        f"svc:x:1003:1003::{paths['svc']}:/usr/sbin/nologin\n")
    (etc / "login.defs").write_text("UID_MIN 1000\nUID_MAX 60000\n")
    (etc / "environment").write_text(f'# machine-wide\nHF_HOME="{tmp_path}/shared-hf"\n')
    return paths


def files_of(machine: dict[str, Path]) -> SystemFiles:
    etc = machine["etc"]
    return SystemFiles(AccountFiles(str(etc / "passwd"), str(etc / "login.defs"), str(etc / "shells")),
                       environment=(str(etc / "environment"),), service_units=(str(machine["units"]),))


def test_system_mode_covers_every_person_and_the_services_stores(machine: dict[str, Path], tmp_path: Path) -> None:
    alice, bob = machine["alice"], machine["bob"]
    for folder in (alice / "models", alice / ".cache" / "huggingface", alice / "Downloads", bob / ".ollama/models",
                   bob / "Téléchargements", tmp_path / "shared-hf", machine["ollama"] / ".ollama/models",
                   tmp_path / "big-disk/ollama"):
        folder.mkdir(parents=True)
    (bob / ".config").mkdir()
    (bob / ".config" / "user-dirs.dirs").write_text('XDG_DOWNLOAD_DIR="$HOME/Téléchargements"\n')
    (machine["units"] / "ollama.service.d").mkdir(parents=True)
    (machine["units"] / "ollama.service.d" / "override.conf").write_text(
        f'[Service]\nEnvironment="OLLAMA_HOST=0.0.0.0" "OLLAMA_MODELS={tmp_path}/big-disk/ollama"\n')

    scope = compute_scope(default_config(mode="system"), files_of(machine))

    assert [(u.name, u.uid, u.home) for u in scope.users] == [("alice", 1001, str(alice)), ("bob", 1002, str(bob))]
    by_name = {u.name: u for u in scope.users}
    assert [p.path for p in by_name["alice"].protected] == [
        f"{alice}/models", f"{alice}/.cache/huggingface", f"{tmp_path}/shared-hf"]
    assert by_name["alice"].protected[2].what == f"Hugging Face home (HF_HOME in {machine['etc']}/environment:2)"
    assert [p.path for p in by_name["alice"].watched] == [f"{alice}/Downloads"]
    assert [p.path for p in by_name["bob"].protected] == [f"{tmp_path}/shared-hf", f"{bob}/.ollama/models"]
    assert [p.path for p in by_name["bob"].watched] == [f"{bob}/Téléchargements"]
    assert f"{bob}/models" in [p.path for p in by_name["bob"].missing]
    assert [p.path for p in scope.shared_protected] == [f"{machine['ollama']}/.ollama/models",
                                                        f"{tmp_path}/big-disk/ollama"]
    assert scope.protected_roots == [f"{alice}/models", f"{alice}/.cache/huggingface", f"{tmp_path}/shared-hf",
                                     f"{bob}/.ollama/models", f"{machine['ollama']}/.ollama/models",
                                     f"{tmp_path}/big-disk/ollama"]
    # every protected and watched place is under one watch root (the test's folders sit under /tmp, itself one)
    for place in [*scope.protected_roots, f"{alice}/Downloads", f"{bob}/Téléchargements", "/var/tmp", "/dev/shm"]:
        assert any(is_inside(place, root) for root in scope.watch_roots), place
    assert [(n.name, n.why) for n in scope.not_covered] == [
        ("daemon", "system-account"), ("ollama", "system-account"), ("svc", "no-login-shell")]


def test_roots_set_in_the_file_replace_the_usual_places_and_extra_roots_add(
        machine: dict[str, Path], tmp_path: Path) -> None:
    (machine["alice"] / "models").mkdir()
    (machine["alice"] / "Downloads").mkdir()
    for name in ("team", "only", "drop"):
        (tmp_path / name).mkdir()
    config = load_config(_write(tmp_path / "c.toml", f'[inventory]\nextra_roots = ["{tmp_path}/team"]\n'),
                         mode="system")
    scope = compute_scope(config, files_of(machine))
    assert f"{machine['alice']}/models" in scope.protected_roots
    assert scope.shared_protected[-1].path == f"{tmp_path}/team"
    assert scope.shared_protected[-1].what == "[inventory] extra_roots"

    config = load_config(_write(tmp_path / "c.toml", f'[inventory]\nroots = ["{tmp_path}/only"]\n'
                                                     f'[watch]\nroots = ["{tmp_path}/drop"]\n'), mode="system")
    scope = compute_scope(config, files_of(machine))
    assert scope.protected_roots == [f"{tmp_path}/only"]
    assert scope.watch_roots == [f"{tmp_path}/only", f"{tmp_path}/drop"]
    assert [u.name for u in scope.users] == ["alice", "bob"]  # still the people; their places are replaced
    assert all(u.protected == () and u.watched == () for u in scope.users)


def test_user_mode_is_the_config_as_before(tmp_path: Path, isolated_home: Path) -> None:
    (isolated_home / "models").mkdir()
    (isolated_home / "Downloads").mkdir()
    (tmp_path / "more").mkdir()
    config = load_config(_write(tmp_path / "c.toml", f'[inventory]\nextra_roots = ["{tmp_path}/more"]\n'),
                         mode="user")
    scope = compute_scope(config)
    (user,) = scope.users
    assert (user.uid, user.home) == (os.geteuid(), str(isolated_home))
    assert scope.protected_roots == config.protected_roots == [f"{isolated_home}/models", f"{tmp_path}/more"]
    assert scope.watch_roots == config.watch_roots
    assert [p.what for p in user.protected] == ["usual model folder", "[inventory] extra_roots"]
    assert scope.not_covered == ()


def test_a_person_whose_home_hangs_is_not_covered_and_says_why(
        machine: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    released = threading.Event()
    real_stat = os.stat

    def hung(path: str) -> os.stat_result:
        if path == str(machine["bob"]):
            released.wait(30)
        return real_stat(path)

    monkeypatch.setattr(accounts_module, "stat_home", hung)
    try:
        scope = compute_scope(default_config(mode="system"), files_of(machine), probe_seconds=0.2)
    finally:
        released.set()
    assert [u.name for u in scope.users] == ["alice"]
    assert ("bob", "home-unreachable") in [(n.name, n.why) for n in scope.not_covered]


def test_to_dict_is_display_text_even_for_names_that_are_not_utf8(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    home = os.fsencode(tmp_path) + b"/h\xff"
    os.makedirs(home + b"/models")
    (etc / "passwd").write_bytes(b"j\xe9:x:1001:1001::" + home + b":/bin/sh\n")
    files = SystemFiles(AccountFiles(str(etc / "passwd"), str(etc / "none"), str(etc / "none")), environment=(),
                        service_units=())
    scope = compute_scope(default_config(mode="system"), files)
    assert scope.protected_roots == [os.fsdecode(home + b"/models")]  # the raw bytes, for the agent
    shown = json.loads(json.dumps(scope.to_dict()))  # text that encodes: for status and config show --json
    assert shown["users_covered"][0]["name"] == "j\\xe9"
    assert shown["users_covered"][0]["protected_roots"] == [f"{tmp_path}/h\\xff/models"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
