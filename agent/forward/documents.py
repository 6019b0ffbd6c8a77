"""The JSON body a destination gets for a record: the native record, ECS, or OCSF."""

from __future__ import annotations

from typing import Any

from weightwarden.agent.forward import ecs, ocsf
from weightwarden.agent.forward.fields import Flat

JSON_FORMATS = ("native", "ecs", "ocsf")


def json_document(format_name: str, flat: Flat, record: dict[str, Any], host: str) -> dict[str, Any]:
    if format_name == "ecs":
        return ecs.document(flat, host)
    if format_name == "ocsf":
        return ocsf.event(flat, host)
    return {"kind": flat.kind, "host": host, **record}
