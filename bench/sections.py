"""docs/benchmarks.md holds one section per benchmark suite; each suite rewrites only its own section.

A section sits between `<!-- begin:TOPIC -->` and `<!-- end:TOPIC -->`; a new topic is appended at the end.
"""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(topic: str, markdown: str, path: Path = BENCHMARKS) -> None:
    block = f"<!-- begin:{topic} -->\n{markdown.strip()}\n<!-- end:{topic} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- begin:{re.escape(topic)} -->.*?<!-- end:{re.escape(topic)} -->", re.DOTALL)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
