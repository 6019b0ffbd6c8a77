"""A local JSON-lines file (ECS or OCSF) for shippers already on the machine (Filebeat, Fluent Bit, a
Splunk forwarder), rotated by size: name -> name.1 -> ... -> name.N. Each batch is fsynced before the
cursor moves; a crash between the two repeats that batch (duplicates, never gaps), and every line
carries the record id. Lines split on LF only: no line break of any kind is written inside one (text.py)."""

from __future__ import annotations

import contextlib
import os
from typing import IO

from weightwarden.agent.forward.render import Renderer, render_each
from weightwarden.agent.forward.text import json_bytes
from weightwarden.agent.forward.transport import Outcome, TransportError
from weightwarden.agent.store.outbox import OutboxRecord


class FileTransport:
    def __init__(self, renderer: Renderer, *, path: str, max_bytes: int, keep: int) -> None:
        self.renderer = renderer
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._file: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            try:
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o640)
                self._file = os.fdopen(fd, "ab")
            except OSError as error:
                raise TransportError(f"open {self.path}: {error.strerror}") from None
        return self._file

    def line(self, record: OutboxRecord) -> bytes:
        return json_bytes(self.renderer.document(record), sort_keys=True) + b"\n"

    def send(self, records: list[OutboxRecord]) -> Outcome:
        rendered, dead = render_each(records, self.line)
        data = b"".join(line for _record, line in rendered)
        out = self._open()
        try:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
            if out.tell() >= self.max_bytes:
                self._rotate()
        except OSError as error:
            self.reset()
            raise TransportError(f"write {self.path}: {error.strerror}") from None
        return Outcome(confirmed=records[-1].sequence, delivered=len(rendered), dead=dead)

    def _rotate(self) -> None:
        self.reset()
        for index in range(self.keep - 1, 0, -1):
            older = f"{self.path}.{index}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{index + 1}")
        os.replace(self.path, f"{self.path}.1")

    def poll(self) -> Outcome:
        return Outcome()

    def unconfirmed(self) -> int:
        return 0

    def reset(self) -> None:
        out, self._file = self._file, None
        if out is not None:
            with contextlib.suppress(OSError):
                out.close()

    def close(self) -> None:
        self.reset()
