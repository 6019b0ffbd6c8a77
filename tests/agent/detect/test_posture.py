"""Posture findings from real files and folders, and the judgement on made-up facts."""

from __future__ import annotations

import os
from pathlib import Path

from weightwarden.agent.detect.posture import FileFacts, facts_of, findings


def ids(facts: FileFacts) -> list[str]:
    return [f.id for f in findings(facts)]


def test_judgement() -> None:
    base = FileFacts("/m/a", 0o100644, "ana", True, True, False, "local")
    assert ids(base) == ["model-readable-by-all"]
    assert ids(FileFacts("/m/a", 0o100644, "ana", False, True, False, "local")) == []  # inside a 0700 home
    assert ids(FileFacts("/m/a", 0o100640, "users", False, True, False, "local")) == ["model-readable-by-broad-group"]
    assert ids(FileFacts("/m/a", 0o100640, "ana", False, True, False, "local")) == []
    assert ids(FileFacts("/m/a", 0o100600, "ana", True, True, True, "removable")) == [
        "model-on-removable-media", "model-in-world-writable-folder"]


def test_facts_of_real_files(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    model = closed / "m.safetensors"
    model.write_bytes(b"x")
    os.chmod(model, 0o644)
    os.chmod(closed, 0o700)
    facts = facts_of(str(model), "local")
    assert facts is not None and not facts.folders_open_to_all and ids(facts) == []
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    os.chmod(tmp_path, 0o755)
    exposed = shared / "m.safetensors"
    exposed.write_bytes(b"x")
    os.chmod(exposed, 0o644)
    facts = facts_of(str(exposed), "local")
    assert facts is not None and facts.parent_world_writable
    expected = ["model-in-world-writable-folder"]
    if facts.folders_open_to_all:  # the folders above tmp_path let everyone through
        expected.insert(0, "model-readable-by-all")
    assert ids(facts) == expected
    assert facts_of(str(tmp_path / "gone"), "local") is None
