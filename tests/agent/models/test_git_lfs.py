"""Git LFS's two copies of one file (agent/models/git_lfs.py): its object store and its working tree.

The repositories are made by real git and git-lfs (installer/dev.sh TEST_DEBS): `git add` runs the clean
filter (working tree -> .git/lfs/objects), `git checkout` the smudge filter (object -> working tree), as a
clone or a pull does. The agent is the one the protection tests drive (files met through file events).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.models.test_protection import closed, make_agent
from tests.agent.pipeline.test_agent_wiring import name, settle, stored
from tests.conftest import write_safetensors
from weightwarden.agent.events import ModelFile
from weightwarden.agent.models.git_lfs import checkout_pair, lfs_object
from weightwarden.agent.service import Agent

OID = hashlib.sha256(b"weights").hexdigest()


def test_an_object_pairs_with_a_working_tree_file_of_its_own_repository_only() -> None:
    stored_object = f"/home/ana/team/.git/lfs/objects/{OID[:2]}/{OID[2:4]}/{OID}"
    assert lfs_object(stored_object) == ("/home/ana/team", OID)
    assert lfs_object("/home/ana/team/.git/lfs/tmp/download-123") == ("/home/ana/team", None)
    assert lfs_object(f"/home/ana/team/.git/lfs/objects/00/00/{OID}") is None  # not where git-lfs puts it
    assert lfs_object("/home/ana/team/llm/model.safetensors") is None

    def model(path: str, sha256: str | None = OID) -> ModelFile:
        return ModelFile(path=path, format="safetensors", size=7, model="llm", sha256=sha256)

    obj = model(stored_object)
    assert checkout_pair(obj, model("/home/ana/team/llm/model.safetensors"))
    assert checkout_pair(model("/home/ana/team/llm/model.safetensors", None), obj)  # hashed later
    assert not checkout_pair(obj, model("/home/ana/other/llm/model.safetensors"))  # another repository
    assert not checkout_pair(obj, model("/home/ana/stash/model.safetensors"))
    assert not checkout_pair(obj, model("/home/ana/team/.git/stash.safetensors"))  # inside .git, not checked out
    assert not checkout_pair(obj, model("/home/ana/team/llm/model.safetensors", "f" * 64))  # other bytes
    assert not checkout_pair(model("/home/ana/team/a.safetensors"), model("/home/ana/team/b.safetensors"))


def git(repository: Path, *args: str) -> str:
    env = {"HOME": str(repository.parent), "PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "ana", "GIT_AUTHOR_EMAIL": "ana@example.org", "GIT_COMMITTER_NAME": "ana",
           "GIT_COMMITTER_EMAIL": "ana@example.org"}
    return subprocess.run(["git", "-C", str(repository), *args], env=env, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A git-lfs repository in the protected root holding one model, committed: its object made by the clean
    filter; then its working-tree file removed and checked out again by the smudge filter."""
    if shutil.which("git-lfs") is None:
        pytest.skip("git-lfs is not installed (installer/dev.sh TEST_DEBS)")
    repo = tmp_path / "models" / "team"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "lfs", "install", "--local")
    git(repo, "lfs", "track", "*.safetensors")
    write_safetensors(repo / "llm" / "model.safetensors", seed=31)
    git(repo, "add", ".gitattributes", "llm")
    git(repo, "commit", "-q", "-m", "the team's model")
    (repo / "llm" / "model.safetensors").unlink()
    git(repo, "checkout", "--", "llm/model.safetensors")
    return repo


@pytest.fixture
def agent(tmp_path: Path, isolated_home: Path) -> Iterator[Agent]:
    driven = make_agent(tmp_path, isolated_home)
    try:
        yield driven
    finally:
        driven.writer.close()
        driven.store.close()


def the_object(repository: Path) -> Path:
    oid = hashlib.sha256((repository / "llm" / "model.safetensors").read_bytes()).hexdigest()
    found = repository / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    assert found.is_file(), "git-lfs stored the object where its layout says"
    return found


@pytest.mark.parametrize("first", ["object", "checkout"])  # a clone or pull; a `git add`
def test_an_lfs_object_and_its_checkout_are_one_model_named_after_the_checkout(
        agent: Agent, repository: Path, first: str) -> None:
    checkout, stored_object = repository / "llm" / "model.safetensors", the_object(repository)
    for path in ([stored_object, checkout] if first == "object" else [checkout, stored_object]):
        closed(agent, path)
        settle(agent)

    records = stored(agent)
    assert [name(r) for r in records if name(r).startswith("model-")] == ["model-created", "model-created"]
    both = [agent.inventory.get(str(p)) for p in (checkout, stored_object)]
    assert [m.model if m else None for m in both] == ["llm", "llm"]
    assert all(m is not None and m.protected for m in both)
    later = records[-1]["details"]
    assert later["git_lfs_pair_of"] == str(stored_object if first == "object" else checkout)
    assert "copy_of" not in later


def test_a_copy_out_of_the_repository_or_into_it_is_still_a_copy(agent: Agent, repository: Path,
                                                                 tmp_path: Path) -> None:
    checkout, stored_object = repository / "llm" / "model.safetensors", the_object(repository)
    for path in (stored_object, checkout):
        closed(agent, path)
        settle(agent)
    out = tmp_path / "elsewhere" / "team.safetensors"
    shutil.copyfile(stored_object, out)
    closed(agent, out)
    settle(agent)
    other = write_safetensors(tmp_path / "models" / "mine" / "model.safetensors", seed=32)
    closed(agent, other)
    settle(agent)
    planted = repository / "llm" / "other.safetensors"
    shutil.copyfile(other, planted)
    closed(agent, planted)
    settle(agent)

    copies = [r for r in stored(agent) if name(r) == "model-copy"]
    assert [c["paths"][-1] for c in copies] == [str(out), str(planted)]
    assert str(other) in copies[1]["paths"]
