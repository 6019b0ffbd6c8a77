"""The repository itself: no merge left half done."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(rb"^(<<<<<<< |>>>>>>> |=======$)", re.MULTILINE)


def test_no_file_holds_conflict_markers() -> None:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    files = [REPO / name.decode() for name in listed.split(b"\0") if name]
    assert len(files) > 100  # the listing worked
    marked = [str(path.relative_to(REPO)) for path in files
              if path.is_file() and path.suffix not in (".png", ".img") and MARKER.search(path.read_bytes())]
    assert marked == []


def test_top_level_folders_are_the_documented_layout() -> None:
    """The top level is fixed (docs/design.md's tree): the package roots, installer, tests, bench, docs, and
    siem/ (SIEM content: templates, dashboards, Splunk configuration, Sigma rules; not Python)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout
    folders = {name.split("/", 1)[0] for name in listed.splitlines() if "/" in name}
    assert folders == {".ci", "agent", "bench", "docs", "gui", "installer", "rules", "siem", "tests"}
    design = (REPO / "docs" / "design.md").read_text()
    assert all(f"\n{folder}/" in design for folder in folders - {".ci"}), "docs/design.md's tree names each folder"
