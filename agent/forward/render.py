"""From a stored record to what one destination receives (bytes for syslog, a JSON document otherwise)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weightwarden.agent.forward import syslog
from weightwarden.agent.forward.documents import json_document
from weightwarden.agent.forward.fields import Flat, flatten
from weightwarden.agent.store.outbox import OutboxRecord


@dataclass(frozen=True)
class Renderer:
    host: str
    format: str  # cef | leef | native | ecs | ocsf
    procid: int | None = None
    sd_id: str = syslog.SD_ID

    def flat(self, record: OutboxRecord) -> Flat:
        return flatten(record.kind, record.record)

    def syslog_message(self, record: OutboxRecord) -> bytes:
        return syslog.message(self.flat(record), host=self.host, procid=self.procid, body_format=self.format,
                              sd_id=self.sd_id)

    def document(self, record: OutboxRecord) -> dict[str, Any]:
        return json_document(self.format, self.flat(record), record.record, self.host)
