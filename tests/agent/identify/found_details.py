"""What an identification found, for assertions: the format with its details, JSON-safe."""

from __future__ import annotations

import json

from weightwarden.agent.identify import Identification


def details_of(found: Identification | None) -> dict[str, object]:
    assert found is not None and found.confirmed
    json.dumps(found.details)
    return {"format": found.format, **found.details}


def subset(found: Identification | None, expected: dict[str, object]) -> None:
    details = details_of(found)
    assert {key: details.get(key) for key in expected} == expected
