"""The JSON body a destination gets for a record: the native record, ECS, or OCSF."""

from __future__ import annotations

from typing import Any

from weightwarden.agent.forward import ecs, ocsf
from weightwarden.agent.forward.fields import Flat
from weightwarden.agent.store.outbox import ChainPlace

JSON_FORMATS = ("native", "ecs", "ocsf")
CHAINED_FORMATS = ("native", "ecs")  # the formats whose documents carry their chain place (`verify --from`)


def json_document(format_name: str, flat: Flat, record: dict[str, Any], host: str) -> dict[str, Any]:
    if format_name == "ecs":
        return ecs.document(flat, host)
    if format_name == "ocsf":
        return ocsf.event(flat, host)
    return {"kind": flat.kind, "host": host, **record}


def add_chain(format_name: str, doc: dict[str, Any], place: ChainPlace) -> dict[str, Any]:
    """The record's place in the hash chain, so the central copy verifies without the endpoint.

    ECS: the exact chained text in `event.original` (ECS's field for the raw event, kept in _source and not
    indexed), the links under `weightwarden.chain`. Native: the document is the record itself, so only the
    links, under `chain`. OCSF documents carry neither (docs/forwarding.md, "Verifying from the centre").
    """
    chain = {"hash": place.hash, "previous": place.previous}
    if format_name == "ecs":
        doc["event"]["original"] = place.text
        doc["weightwarden"]["chain"] = chain
    elif format_name == "native":
        doc["chain"] = chain
    return doc
