"""Keep check details small: they travel in every event and forwarded record."""

from __future__ import annotations

from collections.abc import Mapping

MAX_MAP_CHARS = 4096  # total for one map (keys + values)
MAX_TEXT_CHARS = 512  # for one value
ELLIPSIS = "…"


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def truncate_string_map(values: Mapping[str, str],
                        budget: int = MAX_MAP_CHARS) -> tuple[dict[str, str], bool]:
    """The first entries of `values` that fit in `budget` characters, long values clipped.

    Returns (kept entries, whether anything was clipped or dropped).
    """
    kept: dict[str, str] = {}
    used = 0
    truncated = False
    for key, value in values.items():
        short_key, short_value = clip(key), clip(value)
        truncated = truncated or short_key != key or short_value != value
        used += len(short_key) + len(short_value)
        if used > budget:
            return kept, True
        kept[short_key] = short_value
    return kept, truncated
