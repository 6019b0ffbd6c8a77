"""From a stored record to what one destination receives (bytes for syslog, a JSON document otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from weightwarden.agent.forward import syslog
from weightwarden.agent.forward.documents import add_chain, json_document
from weightwarden.agent.forward.fields import Flat, flatten
from weightwarden.agent.forward.text import well_formed
from weightwarden.agent.store.outbox import OutboxRecord


@dataclass(frozen=True)
class Renderer:
    host: str
    format: str  # cef | leef | native | ecs | ocsf
    procid: int | None = None
    sd_id: str = syslog.SD_ID

    def flat(self, record: OutboxRecord) -> Flat:
        if record.unreadable is not None:
            raise ValueError(f"the stored record cannot be read ({record.unreadable})")
        return flatten(record.kind, record.record)

    def syslog_message(self, record: OutboxRecord) -> bytes:
        return syslog.message(self.flat(record), host=self.host, procid=self.procid, body_format=self.format,
                              sd_id=self.sd_id)

    def document(self, record: OutboxRecord) -> dict[str, Any]:
        doc = json_document(self.format, self.flat(record), record.record, self.host)
        return doc if record.chain is None else add_chain(self.format, doc, record.chain)


T = TypeVar("T")
REASON_LIMIT = 1000


def failure_reason(stage: str, error: BaseException) -> str:
    """Why a record could not be rendered or sent, for the dead-letter table and the health record."""
    return well_formed(f"{stage}: {type(error).__name__}: {error}")[:REASON_LIMIT]


def render_each(records: list[OutboxRecord], render: Callable[[OutboxRecord], T]
                ) -> tuple[list[tuple[OutboxRecord, T]], list[tuple[OutboxRecord, str]]]:
    """Render every record on its own: (record, rendered) pairs, and (record, reason) for those that failed.

    A record no renderer can take (a field of an unexpected type, a corrupted stored record) goes to the
    dead letters with the reason; the others are sent. One record must never block a destination.
    """
    rendered: list[tuple[OutboxRecord, T]] = []
    dead: list[tuple[OutboxRecord, str]] = []
    for record in records:
        try:
            rendered.append((record, render(record)))
        except Exception as error:  # any failure of one record, whatever it is (STYLE.md habit 3)
            dead.append((record, failure_reason("cannot render", error)))
    return rendered, dead
