"""The protection policy through the agent's real wiring: discovery and file events both go through
InventoryUpkeep.accept, where `[inventory] protect` decides; `weightwarden models --json` says why."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import json_lines, run_cli
from tests.agent.models.test_models import hf_cache_repo
from tests.agent.pipeline.test_agent_wiring import name, settle, stored
from tests.conftest import write_safetensors
from weightwarden.agent.config import load_config
from weightwarden.agent.events import ModelFile
from weightwarden.agent.models.protection import Finder, ProtectPolicy
from weightwarden.agent.pipeline.files import RescanRequest
from weightwarden.agent.pipeline.testing import SynchronousExecutor
from weightwarden.agent.sensors.files import FileObservation
from weightwarden.agent.service import Agent

REVISION = "0123456789abcdef0123456789abcdef01234567"


def make_agent(tmp_path: Path, home: Path, extra: str = "") -> Agent:
    for folder in ("models", "elsewhere", "data"):
        (tmp_path / folder).mkdir(exist_ok=True)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[agent]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[inventory]\nroots = ["{tmp_path / "models"}"]\ndiscover_roots = ["{home}"]\n{extra}\n'
        f'[watch]\nroots = ["{tmp_path / "elsewhere"}"]\n\n[store]\nflush_seconds = 0.05\n')
    return Agent(load_config(config, mode="user"), executor=SynchronousExecutor())


@pytest.fixture
def world(tmp_path: Path, isolated_home: Path) -> dict[str, Path]:
    """A public Hugging Face cache repo and a private training output in a home nobody configured."""
    hub = isolated_home / ".cache" / "huggingface" / "hub"
    blob, _ = hf_cache_repo(hub, "acme/llama-mini")
    private = write_safetensors(isolated_home / "code" / "proj" / "out" / "model.safetensors", seed=11)
    protected = write_safetensors(tmp_path / "models" / "mine" / "model.safetensors", seed=12)
    return {"blob": blob, "private": private, "protected": protected, "home": isolated_home}


def closed(agent: Agent, path: Path) -> None:
    files = agent.observations.emitter("files")
    files(FileObservation("created", str(path)))
    files(FileObservation("closed", str(path)))


def discover(agent: Agent) -> None:
    agent.observations.emitter("control")(RescanRequest(tuple(agent.config.protected_roots), "scan now"))
    settle(agent)
    assert agent.discovery is not None
    assert agent.discovery.run_pass() is True
    settle(agent)


@pytest.fixture
def agent(tmp_path: Path, world: dict[str, Path]) -> Iterator[Agent]:
    driven = make_agent(tmp_path, world["home"])
    try:
        yield driven
    finally:
        driven.writer.close()
        driven.store.close()


def provenance(agent: Agent, path: Path) -> Any:
    model = agent.inventory.get(str(path))
    assert model is not None, path
    return model.provenance


def test_public_hub_weights_are_found_but_not_protected_private_output_is(agent: Agent,
                                                                         world: dict[str, Path]) -> None:
    discover(agent)

    public = provenance(agent, world["blob"])
    assert (public.found_by, public.where, public.pass_number) == ("discovery", str(world["home"]), 1)
    assert not public.protected
    assert public.reason == f"public: Hugging Face repo acme/llama-mini at {REVISION}"
    private = provenance(agent, world["private"])
    assert private.protected and private.reason == "private (all-private policy)"
    assert private.found_by == "discovery"
    mine = provenance(agent, world["protected"])
    assert mine.protected and mine.found_by == "protected-root"
    assert agent.inventory.protected_paths() == {str(world["private"]), str(world["protected"])}
    assert agent.activity.snapshot()["protected_files"] == 2  # public weights are known, not guarded


def test_a_copy_of_public_weights_is_public_a_copy_of_private_output_alerts(agent: Agent, tmp_path: Path,
                                                                           world: dict[str, Path]) -> None:
    discover(agent)
    before = len(stored(agent))
    public_copy = tmp_path / "elsewhere" / "llama.safetensors"
    shutil.copyfile(world["blob"], public_copy)
    closed(agent, public_copy)
    settle(agent)
    private_copy = tmp_path / "elsewhere" / "stolen.safetensors"
    shutil.copyfile(world["private"], private_copy)
    closed(agent, private_copy)
    settle(agent)

    records = stored(agent)[before:]
    assert [name(r) for r in records] == ["model-created", "model-copy", "model-created"]
    assert records[1]["paths"] == [str(world["private"]), str(private_copy)]
    copied = provenance(agent, public_copy)
    assert copied.found_by == "file-event" and not copied.protected
    assert copied.reason.startswith(f"public: copy of {world['blob']} (Hugging Face repo acme/llama-mini")
    assert records[0]["details"]["protected"] is False
    stolen = provenance(agent, private_copy)
    assert stolen.protected and stolen.found_by == "file-event"


def test_a_new_model_outside_every_root_is_protected_when_first_seen_by_a_file_event(
        agent: Agent, tmp_path: Path) -> None:
    checkpoint = write_safetensors(tmp_path / "elsewhere" / "run" / "checkpoint-500" / "model.safetensors", seed=4)
    closed(agent, checkpoint)
    settle(agent)
    made = provenance(agent, checkpoint)
    assert (made.found_by, made.protected, made.reason) == ("file-event", True, "private (all-private policy)")


def test_private_hub_orgs_keep_their_cache_repos_protected(tmp_path: Path, world: dict[str, Path]) -> None:
    driven = make_agent(tmp_path, world["home"], 'private_hub_orgs = ["ACME"]\n')
    try:
        discover(driven)
        assert provenance(driven, world["blob"]).protected
    finally:
        driven.writer.close()
        driven.store.close()


def test_protect_roots_protects_only_the_roots_and_runs_no_discovery(tmp_path: Path, world: dict[str, Path]) -> None:
    driven = make_agent(tmp_path, world["home"], 'protect = "roots"\n')
    try:
        assert driven.discovery is None
        driven.observations.emitter("control")(RescanRequest(tuple(driven.config.protected_roots), "scan now"))
        outside = write_safetensors(tmp_path / "elsewhere" / "new.safetensors", seed=9)
        copy = tmp_path / "elsewhere" / "copy.safetensors"
        settle(driven)
        shutil.copyfile(world["protected"], copy)
        closed(driven, outside)
        closed(driven, copy)
        settle(driven)
        assert provenance(driven, world["protected"]).reason == "configured root"
        assert not provenance(driven, outside).protected
        assert provenance(driven, outside).reason == 'outside the configured roots (protect = "roots")'
        assert provenance(driven, copy).protected and provenance(driven, copy).reason.startswith("copy of protected")
        assert driven.inventory.get(str(world["private"])) is None  # nobody walked the home
    finally:
        driven.writer.close()
        driven.store.close()


def test_models_json_says_where_each_model_was_found_and_why_it_is_protected(agent: Agent, tmp_path: Path,
                                                                            world: dict[str, Path]) -> None:
    discover(agent)
    assert agent.writer.flush(timeout=10)
    result = run_cli("models", "--json", "--config", str(tmp_path / "config.toml"), "--mode", "user")
    assert result.returncode == 0, result.stderr
    models = {m["name"]: m for m in json_lines(result.stdout)}
    assert models["acme/llama-mini"]["protected"] is False
    assert models["acme/llama-mini"]["protect_reasons"] == [f"public: Hugging Face repo acme/llama-mini at {REVISION}"]
    assert models["acme/llama-mini"]["found_by"] == [f"discovery pass 1 under {world['home']}"]
    assert models["out"]["protected"] is True
    assert models["out"]["protect_reasons"] == ["private (all-private policy)"]
    assert models["mine"]["found_by"] == [f"protected root {tmp_path / 'models'}"]
    text = run_cli("models", "--config", str(tmp_path / "config.toml"), "--mode", "user").stdout
    assert "no: public: Hugging Face repo acme/llama-mini" in text and "yes: private (all-private policy)" in text


def test_a_provenance_survives_the_store_and_old_rows_read_as_protected(agent: Agent, world: dict[str, Path]) -> None:
    discover(agent)
    assert agent.writer.flush(timeout=10)
    rows = {m.path: m for m in agent.store.model_files()}
    assert rows[str(world["blob"])].provenance == provenance(agent, world["blob"])
    agent.store.db.execute("update model_files set found_by = null")
    assert all(m.protected and m.provenance is None for m in agent.store.model_files())


def test_the_policy_decides_from_data_alone() -> None:
    policy = ProtectPolicy("all-private", ["/srv/models"], ["private-org"])
    blob = "/h/.cache/huggingface/hub/models--private-org--x/blobs/" + "a" * 64
    public = ModelFile(path=blob, format="safetensors", size=10, model="m", sha256="a" * 64)
    assert policy.decide(public, Finder("discovery", "/h", 1)).protected  # a listed org
    other = ModelFile(path=blob.replace("private-org", "meta"), format="safetensors", size=10, model="m",
                      sha256="a" * 64)
    assert not policy.decide(other, Finder("discovery", "/h", 1)).protected
    forged = ModelFile(path=other.path, format="safetensors", size=10, model="m", sha256="b" * 64)
    assert policy.decide(forged, Finder("discovery", "/h", 1)).protected  # the name is not its hash
    private = ModelFile(path="/srv/models/x.safetensors", format="safetensors", size=10, model="x", sha256="a" * 64)
    decided = policy.decide(other, Finder("discovery", "/h", 1), [private])
    assert decided.protected and decided.reason.startswith("copy of protected x")  # known private bytes
    assert policy.decide(private, Finder("file-event")).found_by == "protected-root"
    assert json.dumps(policy.decide(private, Finder("file-event")).reason) == '"private (all-private policy)"'
