"""Session environment from files written by the tests: quotes, comments, export, invalid lines, expansion."""

from __future__ import annotations

from pathlib import Path

from weightwarden.agent.scope.environment import expand, parse_line, session_environment


def test_etc_environment_lines() -> None:
    assert parse_line('HF_HOME="/data/hf"', pam_user_syntax=False) == [("HF_HOME", "/data/hf")]
    assert parse_line("HF_HOME='/data/hf'", pam_user_syntax=False) == [("HF_HOME", "/data/hf")]
    assert parse_line("export TORCH_HOME=/data/torch", pam_user_syntax=False) == [("TORCH_HOME", "/data/torch")]
    assert parse_line("  # HF_HOME=/commented", pam_user_syntax=False) == []
    assert parse_line("", pam_user_syntax=False) == []
    assert parse_line("not an assignment", pam_user_syntax=False) == []
    assert parse_line("1BAD=/x", pam_user_syntax=False) == []
    assert parse_line("HF HOME=/x", pam_user_syntax=False) == []


def test_pam_environment_default_and_override() -> None:
    line = 'HF_HOME DEFAULT=@{HOME}/hf OVERRIDE="${XDG_DATA_HOME}/hf"'
    assert parse_line(line, pam_user_syntax=True) == [("HF_HOME", "@{HOME}/hf"), ("HF_HOME", "${XDG_DATA_HOME}/hf")]
    assert parse_line(line, pam_user_syntax=False) == []


def test_expansion() -> None:
    known = {"HOME": "/home/a", "XDG_CACHE_HOME": "/fast/cache"}
    assert expand("~/hf", known) == "/home/a/hf"
    assert expand("$HOME/hf", known) == "/home/a/hf"
    assert expand("${HOME}/hf", known) == "/home/a/hf"
    assert expand("@{HOME}/hf", known) == "/home/a/hf"
    assert expand("${XDG_CACHE_HOME:-/x}/hf", known) == "/fast/cache/hf"
    assert expand("${UNSET:-/x}/hf", known) == "/x/hf"
    assert expand("/a${XDG_CACHE_HOME:+/set}", known) == "/a/set"
    assert expand("/a${UNSET:+/set}", known) == "/a"
    assert expand("$UNSET/hf", known) is None  # a guess is worse than nothing


def test_system_then_user_files_every_value_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config" / "environment.d").mkdir(parents=True)
    etc_environment = tmp_path / "environment"
    etc_environment.write_text('# system-wide\nPATH="/usr/bin:/bin"\nHF_HOME="/srv/hf"\ngarbage line\n'
                               "XDG_CACHE_HOME=relative/ignored\n")
    (home / ".pam_environment").write_text("OLLAMA_MODELS DEFAULT=@{HOME}/ollama\n")
    (home / ".config" / "environment.d" / "20-hf.conf").write_text(
        "# mine\nHF_HOME=${HOME}/my-hf\nTORCH_HOME=$HF_HOME/torch\nBROKEN=$NOPE/x\n")
    (home / ".config" / "environment.d" / "10-first.conf").write_bytes(b"XDG_CACHE_HOME=/cache/\xff\n")
    env = session_environment(str(home), "a", system_files=[str(etc_environment), str(tmp_path / "missing")])
    assert [(s.value, s.source) for s in env.values("HF_HOME")] == [
        ("/srv/hf", f"{etc_environment}:3"),
        (f"{home}/my-hf", f"{home}/.config/environment.d/20-hf.conf:2"),
    ]
    assert [s.value for s in env.values("TORCH_HOME")] == [f"{home}/my-hf/torch"]
    assert [s.value for s in env.values("OLLAMA_MODELS")] == [f"{home}/ollama"]
    assert [s.value.encode("utf-8", "surrogateescape") for s in env.values("XDG_CACHE_HOME")] == [b"/cache/\xff"]
    assert env.values("BROKEN") == []


def test_user_files_that_are_fifos_or_symlinks_are_not_read(tmp_path: Path) -> None:
    import os

    home = tmp_path / "home"
    (home / ".config" / "environment.d").mkdir(parents=True)
    os.mkfifo(home / ".pam_environment")
    secret = tmp_path / "secret"
    secret.write_text("HF_HOME=/from/a/file/the/user/cannot/write\n")
    (home / ".config" / "environment.d" / "x.conf").symlink_to(secret)
    env = session_environment(str(home), "a", system_files=[])
    assert env.settings == []
