"""Canaries are files, not names (agent/canary.py): recognised by (device, inode), by path only while the
file there is the planted one, and by content when copied; the registry fails loudly and is never lost;
a canary planted with sudo belongs to the person who ran sudo."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import shutil
from pathlib import Path

import pytest

from tests.agent.cli.helpers import run_cli
from weightwarden.agent import canary
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.rules import RuleSet, load_rules
from weightwarden.agent.events import FileInfo, ModelFile, ProcessInfo
from weightwarden.agent.fingerprint.quick import quick_fingerprint
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.pipeline.activity_events import access_event
from weightwarden.agent.sensors.access import AccessObservation

READER = ProcessInfo(pid=4242, name="cat", executable="/usr/bin/cat", user="mallory", uid=1001)


def _model_file(path: Path, model: str, *, with_sha256: bool = True) -> ModelFile:
    """A model file as the inventory holds one: identity and fingerprints from the real file."""
    info = path.stat()
    with path.open("rb") as handle:
        quick = quick_fingerprint(handle.fileno(), info.st_size)
    digest = canary.hashlib.sha256(path.read_bytes()).hexdigest() if with_sha256 else None
    return ModelFile(path=str(path), format="safetensors", size=info.st_size, model=model, sha256=digest,
                     quick_fingerprint=quick, device=info.st_dev, inode=info.st_ino, mtime_ns=info.st_mtime_ns)


def _read_by(path: Path, inventory: Inventory, *, sensor_path: Path | None = None) -> AccessObservation:
    info = path.stat()
    return AccessObservation("read", str(sensor_path or path), info.st_dev, info.st_ino, info.st_size, READER,
                             bytes_read=info.st_size)


def _canary_alerts(data: Path, path: Path, inventory: Inventory, *, sensor_path: Path | None = None) -> list[str]:
    """Rule ids the real engine raises for a read of `path`, as the agent builds the event."""
    rules = RuleSet(tuple(r for r in load_rules().rules if r.id == "canary-model-accessed"), ())
    engine = DetectionEngine(rules, canaries=canary.Canaries(str(data)))
    event = access_event(_read_by(path, inventory, sensor_path=sensor_path), inventory, canary.utc_now())
    return [a.rule_id for a in engine.process(event)]


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path, canary.Canary]:
    data = tmp_path / "data"
    decoy = canary.plant(str(tmp_path / "models" / "internal-7b"), str(data))
    return data, Path(decoy.path), decoy


def test_the_registry_records_identity_fingerprints_and_owner(planted: tuple[Path, Path, canary.Canary]) -> None:
    data, path, decoy = planted
    info = path.stat()
    (entry,) = canary.load_registry(str(data))
    assert entry == decoy and (entry.device, entry.inode, entry.size) == (info.st_dev, info.st_ino, info.st_size)
    assert entry.quick_fingerprint == _model_file(path, "x").quick_fingerprint
    assert entry.owner == pwd.getpwuid(os.geteuid()).pw_name and entry.owner_uid == os.geteuid()
    assert (data / canary.REGISTRY).stat().st_mode & 0o777 == 0o600  # who can read it knows the decoys


def test_a_renamed_or_moved_canary_is_still_one(planted: tuple[Path, Path, canary.Canary], tmp_path: Path) -> None:
    data, path, _ = planted
    inventory = Inventory([_model_file(path, "internal-7b")])
    renamed = path.with_name("consolidated.safetensors")
    os.rename(path, renamed)
    # the sensor may still know it by its old name, the inventory may not have followed yet: (device, inode)
    assert _canary_alerts(data, renamed, Inventory()) == ["canary-model-accessed"]
    assert _canary_alerts(data, renamed, inventory, sensor_path=path) == ["canary-model-accessed"]
    elsewhere = tmp_path / "archive" / "old.safetensors"
    elsewhere.parent.mkdir()
    os.rename(renamed, elsewhere)
    assert _canary_alerts(data, elsewhere, Inventory()) == ["canary-model-accessed"]


def test_a_copy_of_a_canary_is_one_by_its_content(planted: tuple[Path, Path, canary.Canary], tmp_path: Path) -> None:
    data, path, _ = planted
    copy = tmp_path / "stash" / "weights.safetensors"
    copy.parent.mkdir()
    shutil.copyfile(path, copy)
    # as soon as it is inventoried with its quick fingerprint, and once its SHA-256 is known
    assert _canary_alerts(data, copy, Inventory([_model_file(copy, "copy", with_sha256=False)])) == [
        "canary-model-accessed"]
    assert _canary_alerts(data, copy, Inventory([_model_file(copy, "copy")])) == ["canary-model-accessed"]


def test_another_file_at_a_canarys_path_is_not_one_unless_it_has_its_bytes(
        planted: tuple[Path, Path, canary.Canary], tmp_path: Path) -> None:
    data, path, _ = planted
    kept = tmp_path / "kept.safetensors"
    shutil.copyfile(path, kept)
    os.unlink(path)
    canary.write_decoy(str(path))  # a new, different model in its place: new inode, other bytes
    assert _canary_alerts(data, path, Inventory([_model_file(path, "internal-7b")])) == []
    os.unlink(path)
    shutil.copyfile(kept, path)  # the canary's bytes put back under a new inode: still a canary
    assert _canary_alerts(data, path, Inventory([_model_file(path, "internal-7b")])) == [
        "canary-model-accessed"]


def test_an_inode_number_reused_after_the_canary_was_deleted_is_not_one(
        planted: tuple[Path, Path, canary.Canary]) -> None:
    _, path, decoy = planted
    index = canary.CanaryIndex([decoy])
    reused = _model_file(path, "other").file_info()
    assert index.matches(reused)
    other = dataclasses.replace(reused, path="/elsewhere/new.bin", sha256=None)
    assert not index.matches(dataclasses.replace(other, size=decoy.size + 1, quick_fingerprint=None))
    assert not index.matches(dataclasses.replace(other, quick_fingerprint="q1:" + "0" * 32))  # same size
    os.unlink(path)
    canary.write_decoy(str(path))  # often gets the deleted canary's inode number: other bytes all the same
    assert not index.matches(_model_file(path, "other", with_sha256=False).file_info())


def test_a_deleted_canary_is_missing_and_nothing_breaks(planted: tuple[Path, Path, canary.Canary]) -> None:
    data, path, _ = planted
    os.unlink(path)
    listing = run_cli("canary", "list", env={"WEIGHTWARDEN_DATA_DIR": str(data)})
    assert listing.returncode == 0, listing.stderr
    assert "missing" in listing.stdout and str(path) in listing.stdout
    (found,) = canary.locate(canary.load_registry(str(data)))
    assert (found.state, found.path) == ("missing", None)


def test_list_says_where_a_moved_canary_is_from_the_inventory(planted: tuple[Path, Path, canary.Canary],
                                                             tmp_path: Path) -> None:
    data, path, decoy = planted
    moved = tmp_path / "elsewhere.safetensors"
    os.rename(path, moved)
    (found,) = canary.locate([decoy], [_model_file(moved, "internal-7b")])
    assert (found.state, found.path) == ("moved", str(moved))
    canary.relocate(str(data), {decoy.path: str(moved)})
    (entry,) = canary.load_registry(str(data))
    assert entry.path == str(moved) and entry.inode == decoy.inode and entry.sha256 == decoy.sha256
    (found,) = canary.locate([entry])
    assert (found.state, found.path) == ("in place", str(moved))
    os.unlink(moved)
    write = canary.write_decoy(str(moved))
    assert write != decoy.sha256 and canary.locate([entry])[0].state == "replaced"


@pytest.mark.parametrize(("text", "line", "what"), [
    ('{"canaries": [\n{"path": "/m/a", "sha256": "', 2, "not valid JSON"),
    ('{"canaries": [\n{"path": "/m/a", "sha256": "' + "a" * 64 + '", "size": 1, "planted": "t"},\n'
     '{"path": "/m/b", "size": 1, "planted": "t"}\n]}\n', 3, "canary 2: sha256 is missing"),
    ('[1, 2]\n', 1, 'expected an object {"canaries"'),
])
def test_a_malformed_registry_is_named_with_its_line_and_left_as_it_is(tmp_path: Path, text: str, line: int,
                                                                       what: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    registry = data / canary.REGISTRY
    registry.write_text(text)
    with pytest.raises(canary.RegistryError) as raised:
        canary.load_registry(str(data))
    assert (raised.value.file, raised.value.line) == (str(registry), line) and what in raised.value.message
    env = {"WEIGHTWARDEN_DATA_DIR": str(data)}
    target = tmp_path / "models" / "decoy.safetensors"
    result = run_cli("canary", "plant", str(target), env=env)
    assert result.returncode == 2 and f"{registry}:{line}: " in result.stderr and what in result.stderr
    assert "nothing was planted" in result.stderr and not target.exists() and registry.read_text() == text
    listing = run_cli("canary", "list", env=env)
    assert listing.returncode == 2 and f"{registry}:{line}: " in listing.stderr


def test_the_agent_keeps_the_canaries_it_knew_while_the_registry_is_broken(
        planted: tuple[Path, Path, canary.Canary], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    data, _, decoy = planted
    monkeypatch.setattr(canary.Canaries, "RECHECK_SECONDS", 0.0)  # look at the registry at every call
    known = canary.Canaries(str(data))
    assert known().canaries == (decoy,)
    registry = data / canary.REGISTRY
    registry.write_text(registry.read_text().replace('"sha256"', '"sha"'))
    assert known().canaries == (decoy,)
    assert f"{registry}:2: canary 1: sha256 is missing" in caplog.text


def test_a_legacy_registry_entry_without_identity_matches_by_path(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / canary.REGISTRY).write_text(json.dumps({"canaries": [
        {"path": "/m/a/model.safetensors", "sha256": "b" * 64, "size": 10, "planted": "2026-01-01T00:00:00Z"}]}))
    (entry,) = canary.load_registry(str(data))
    assert entry.inode is None
    index = canary.CanaryIndex([entry])
    assert index.matches(FileInfo(path="/m/a/model.safetensors", device=1, inode=2))
    assert not index.matches(FileInfo(path="/m/b/model.safetensors", device=1, inode=2))


@pytest.mark.root
def test_plant_under_sudo_belongs_to_the_user_who_ran_sudo(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, as sudo gives")
    someone = pwd.getpwnam("nobody")
    data = tmp_path / "data"
    env = {"WEIGHTWARDEN_DATA_DIR": str(data), "SUDO_UID": str(someone.pw_uid), "SUDO_GID": str(someone.pw_gid),
           "SUDO_USER": "nobody"}
    path = tmp_path / "home" / "models" / "internal-7b" / "model.safetensors"
    result = run_cli("canary", "plant", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert "owner: nobody, the user who ran sudo" in result.stdout
    for owned in (path, path.parent, path.parent.parent, path.parent.parent.parent):  # and the folders it made
        assert (owned.stat().st_uid, owned.stat().st_gid) == (someone.pw_uid, someone.pw_gid), owned
    assert tmp_path.stat().st_uid == 0  # what existed before is left alone
    (entry,) = canary.load_registry(str(data))
    assert (entry.owner, entry.owner_uid) == ("nobody", someone.pw_uid)

    plain = run_cli("canary", "plant", str(tmp_path / "mine.safetensors"), env={"WEIGHTWARDEN_DATA_DIR": str(data)})
    assert plain.returncode == 0 and "owner: root, the caller" in plain.stdout
    assert (tmp_path / "mine.safetensors").stat().st_uid == 0
    assert [c.owner for c in canary.load_registry(str(data))] == ["nobody", "root"]
