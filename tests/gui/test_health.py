"""The Overview's discovery progress, read from the status snapshot the agent writes: fed the real
Discovery.snapshot() output, not hand-made keys."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agent.discovery.test_discovery import Harness
from tests.conftest import write_safetensors
from weightwarden.gui.health import discovery_progress


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
