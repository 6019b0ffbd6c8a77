"""Durations as rules write them: `90` or `90s`, `500ms`, `10m`, `2h`."""

from __future__ import annotations

import re
from typing import Any

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")


def parse_duration(value: Any) -> float | None:
    """Seconds from `90`, `90s`, `500ms`, `10m`, `2h`; None when it is not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    found = _DURATION.match(str(value).strip())
    if not found:
        return None
    number, unit = float(found.group(1)), found.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
