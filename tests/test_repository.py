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
