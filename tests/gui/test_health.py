"""The Overview's discovery progress, read from the status snapshot the agent writes: fed the real
Discovery.snapshot() output, not hand-made keys."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agent.discovery.test_discovery import Harness
from tests.agent.scope.test_scope import files_of, machine  # noqa: F401 - the fixture
from tests.conftest import write_safetensors
from weightwarden.agent.config import default_config
from weightwarden.agent.pipeline.mount_coverage import MountCoverage
from weightwarden.agent.scope import compute_scope
from weightwarden.agent.sensors.files import FileSensor
from weightwarden.gui.health import coverage_lines, discovery_progress


def test_discovery_progress_from_the_agents_own_snapshot(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "out" / "model.safetensors")
    (tmp_path / "odd<name>").mkdir()
    (tmp_path / "z.txt").write_text("not a model")
    harness = Harness([tmp_path])
    harness.discovery.run_pass(max_files=1)  # stopped part way: a resumable position under the root
    harness.discovery.current_root = str(tmp_path / "odd<name>")
    status = json.dumps({"running": True, "discovery": harness.discovery.snapshot()})

    progress = discovery_progress(status)

    assert progress is not None
    assert (progress.pass_number, progress.passes_done, progress.files_seen, progress.models_found) == (1, 0, 1, 1)
    lines = progress.lines()
    assert lines[0] == "paused: pass 1, 0 done"
    assert any("odd&lt;name&gt;" in line for line in lines)  # paths are escaped for the rich-text label
    assert discovery_progress(json.dumps({"running": True})) is None  # protect = "roots": no discovery
    assert discovery_progress(None) is None and discovery_progress("{not json") is None


def test_coverage_from_the_agents_own_scope_and_sensor_lines(machine: dict[str, Path]) -> None:  # noqa: F811
    """Users covered and not (why), roots, mounts watched: the Overview reads the Scope's and MountCoverage's
    real output, as `weightwarden status` does."""
    (machine["alice"] / "models").mkdir()
    scope = compute_scope(default_config(mode="system"), files_of(machine))
    files = FileSensor([], lambda observation: None, lambda health: None)
    coverage = MountCoverage(files, None, lambda roots, why: None, mounts={}, watched_roots=[])
    status = json.dumps({"running": True, "scope": scope.to_dict(), "sensors": [coverage.status().to_dict()]})

    lines = coverage_lines(status)

    assert lines[0] == "Users covered: alice, bob"
    assert lines[1].startswith("Roots: 1 protected")
    assert any("not covered: svc (no-login-shell)" in line for line in lines)
    assert not any("daemon" in line for line in lines)  # system accounts are not people
    assert any(line.startswith("Mounts watched: ") for line in lines)
    assert coverage_lines(None) == [] and coverage_lines("{not json") == []
