"""Forwarding fixtures: test certificates, a log full of hostile values, and a forwarder run to a condition."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.forward.certs import Pki, make_pki
from tests.waiting import wait_for  # noqa: F401 - re-exported for the tests of this folder
from weightwarden.agent.config import ForwardDestination
from weightwarden.agent.events import Action, Alert, Category, Destination, Event, FileInfo, ProcessInfo, Record
from weightwarden.agent.forward.forwarder import Forwarder
from weightwarden.agent.store import Store

HOSTILE = 'a|b=c\\d\ne\r"q" ]x [y] \\\\n=\\= ü€🦙 \t'


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def hostile_records() -> list[Record]:
    """Events and alerts whose every text field is hostile to some format: pipes, =, backslashes, newlines,
    quotes, ], non-ASCII paths."""
    process = ProcessInfo(pid=4242, name="sc|p=x", executable="/usr/bin/scp \\ ]", user='mallory "m"',
                          command_line=f"scp -r /models/{HOSTILE} host:/tmp", ppid=1)
    return [
        Event(Action.MODEL_CREATED, Category.FILE, f"model created: {HOSTILE}",
              file=FileInfo(path=f"/home/ü/models/{HOSTILE}.safetensors", size=123456, format="safetensors",
                            sha256="ab" * 32), model=f"llama|{HOSTILE}", process=process, severity=2),
        Alert("model-copy", f"Copy of a protected model | {HOSTILE}", 8, f"copied {HOSTILE}",
              paths=(f"/home/ü/models/{HOSTILE}.safetensors", f"/media/usb/кирилл/{HOSTILE}.bin"),
              model="llama=7b]", process=process,
              destination=Destination("removable", address="10.0.0.5", port=22, path="/media/usb")),
        Event(Action.MODEL_MOVED, Category.FILE, "moved", file=FileInfo(path="/m/日本語/a b.gguf"),
              previous_path="/m/old]\\.gguf", model=None, severity=0),
        Event(Action.AGENT_STARTED, Category.HOST, "x" * 20000, details={"long": "y" * 5000}),  # must stay < 8 KiB
    ]


def store_records(database: Path, records: list[Record]) -> list[Record]:
    store = Store(database)
    try:
        return store.write(records)
    finally:
        store.close()




@contextlib.contextmanager
def forwarding(destination: ForwardDestination, database: Path,
               **kwargs: Any) -> Iterator[tuple[Forwarder, list[Record]]]:
    """A running Forwarder for one destination; yields it and the records it emitted (health, drops)."""
    emitted: list[Record] = []
    forwarder = Forwarder(destination, str(database), "ww-test-host", emitted.append, idle_seconds=0.05, **kwargs)
    forwarder.start()
    try:
        yield forwarder, emitted
    finally:
        forwarder.stop()


def destination(name: str, **values: Any) -> ForwardDestination:
    defaults: dict[str, Any] = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.5, "timeout_seconds": 5.0}
    return ForwardDestination(name=name, **{**defaults, **values})
