"""What `weightwarden status` and `config show` say about the scope, from the Scope's real output."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agent.cli.helpers import run_cli
from tests.agent.scope.test_scope import files_of, machine  # noqa: F401 - the fixture
from tests.agent.sensors.test_status_cmd import snapshot, write
from weightwarden.agent.cli.config_cmd import scope_lines
from weightwarden.agent.config import default_config
from weightwarden.agent.scope import compute_scope


def test_status_names_users_covered_and_not(machine: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    (machine["alice"] / "models").mkdir()
    scope = compute_scope(default_config(mode="system"), files_of(machine))
    env = write(tmp_path, {**snapshot(), "scope": json.loads(json.dumps(scope.to_dict()))})
    shown = run_cli("status", env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "users:     2 covered: alice, bob" in lines
    assert f"  alice: {machine['alice']}/models" in lines
    assert "  bob: no model folder exists yet" in lines
    assert "not covered: 1 accounts (+2 system accounts)" in lines
    assert "  svc: no login shell (/usr/sbin/nologin)" in lines
    assert json.loads(run_cli("status", "--json", env=env).stdout)["scope"]["users_covered"][0]["name"] == "alice"


def test_config_show_lines_per_user(machine: dict[str, Path]) -> None:  # noqa: F811
    (machine["alice"] / "models").mkdir()
    (machine["alice"] / "Downloads").mkdir()
    lines = scope_lines(compute_scope(default_config(mode="system"), files_of(machine)))
    alice = lines.index(f"user alice (uid 1001, home {machine['alice']})")
    assert lines[alice + 1] == f"  protected: {machine['alice']}/models  (models folder)"
    assert lines[alice + 2] == f"  watched:   {machine['alice']}/Downloads  (Downloads)"
    assert lines[alice + 3].startswith(f"  missing:   {machine['alice']}/.cache/huggingface")
    assert "  (no model folder of theirs exists now; each is inventoried once it does)" in lines
    assert "  svc (uid 1003): no login shell (/usr/sbin/nologin)" in lines
    assert "  2 system accounts (uid outside the login range): daemon, ollama" in lines


def test_config_show_in_user_mode_is_one_user(isolated_home: Path) -> None:
    (isolated_home / "models").mkdir()
    shown = run_cli("config", "show", "--mode", "user")
    assert shown.returncode == 0, shown.stderr
    assert f"protected roots: {isolated_home}/models" in shown.stdout.splitlines()
    assert "not covered" not in shown.stdout
