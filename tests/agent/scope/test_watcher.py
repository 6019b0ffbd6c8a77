"""A changed scope through the agent's real wiring: the watcher reports it, the dispatcher's handler scans the
new roots and records one scope-changed event; a user who goes stops being scanned, their models are kept."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.agent.pipeline.test_agent_wiring import agent, settle, stored  # noqa: F401 - the fixture
from tests.conftest import write_safetensors
from weightwarden.agent.scope import Scope, ScopeChanged, ScopeWatcher, UserScope
from weightwarden.agent.scope.stores import Place
from weightwarden.agent.service import Agent


def with_user(scope: Scope, name: str, models: Path) -> Scope:
    user = UserScope(name, 4242, str(models.parent), (Place(str(models), "models folder"),), (), ())
    return dataclasses.replace(scope, users=(*scope.users, user))


def test_the_watcher_reports_a_scope_only_when_it_changed(agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    start = agent.scope
    later = with_user(start, "carol", tmp_path / "carol" / "models")
    answers = iter([start, start, later, later])
    reported: list[object] = []
    watcher = ScopeWatcher(agent.config, reported.append, compute=lambda _config: next(answers))
    assert watcher.initial is start
    watcher.look()
    watcher.look()
    watcher.look()
    assert reported == [ScopeChanged(later)]
    assert watcher.status().events == 1


def test_a_new_user_is_scanned_and_named_and_a_gone_one_stops_being_scanned(agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    assert agent.dispatcher.handles(ScopeChanged)
    agent.files.start()  # the initial inventory: llama
    settle(agent)
    model = write_safetensors(tmp_path / "carol" / "models" / "mistral" / "model.safetensors", seed=5)
    start = agent.scope
    grown = with_user(start, "carol", tmp_path / "carol" / "models")

    agent.observations.emitter("scope")(ScopeChanged(grown))
    settle(agent)

    assert agent.scope is grown and agent.files.scope is grown
    records = stored(agent)
    (changed,) = [r for r in records if r["event"]["action"] == "scope-changed"]
    assert changed["message"] == f"scope changed: users covered: carol; protected roots added: {tmp_path}/carol/models"
    assert changed["details"]["users_added"] == ["carol"]
    assert changed["details"]["protected_roots_added"] == [f"{tmp_path}/carol/models"]
    assert agent.inventory.get(str(model)) is not None  # inventoried by the rescan the change asked for

    agent.observations.emitter("scope")(ScopeChanged(start))  # carol's account is deleted
    settle(agent)
    (_, gone) = [r for r in stored(agent) if r["event"]["action"] == "scope-changed"]
    assert gone["details"]["users_removed"] == ["carol"]
    assert gone["details"]["protected_roots_removed"] == [f"{tmp_path}/carol/models"]
    assert agent.inventory.get(str(model)) is not None  # kept until a rescan finds it gone
    assert f"{tmp_path}/carol/models" not in agent.files.scope.protected_roots


def test_the_status_snapshot_names_the_users_covered(agent: Agent) -> None:  # noqa: F811
    snapshot = agent.activity.snapshot()
    assert [u["name"] for u in snapshot["scope"]["users_covered"]] == [agent.scope.users[0].name]
    assert snapshot["scope"]["protected_roots"] == agent.scope.protected_roots
    assert "scope" in [s["name"] for s in snapshot["sensors"]]


def test_a_change_that_moves_no_user_and_no_root_records_nothing(agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    start = agent.scope
    (tmp_path / "new-downloads").mkdir()
    described = dataclasses.replace(start, problems=("/etc/passwd:3: 3 fields, 7 expected",))
    agent.observations.emitter("scope")(ScopeChanged(described))
    settle(agent)
    assert agent.scope is described
    assert [r for r in stored(agent) if r["event"]["action"] == "scope-changed"] == []

    (user,) = start.users
    watching = dataclasses.replace(described, users=(dataclasses.replace(
        user, watched=(*user.watched, Place(str(tmp_path / "new-downloads"), "Downloads"))),))
    agent.observations.emitter("scope")(ScopeChanged(watching))
    settle(agent)
    (changed,) = [r for r in stored(agent) if r["event"]["action"] == "scope-changed"]
    assert changed["message"] == f"scope changed: watched roots added: {tmp_path}/new-downloads"
