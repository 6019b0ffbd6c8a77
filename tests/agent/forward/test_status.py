"""`weightwarden sync status` (and the app, through the same agent/forward/status.py): per destination the
cursor, backlog and totals, and the records the destination refused (dead letters), newest first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agent.forward.conftest import store_records
from weightwarden.agent.cli.main import main
from weightwarden.agent.events import Action, Category, Event
from weightwarden.agent.store.outbox import Outbox


def test_sync_status_lists_dead_letters_per_destination(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\nmode = "user"\ndata_dir = "{data}"\n'
                      f'[forward.es]\ntype = "bulk"\nurl = "http://127.0.0.1:1"\n'
                      f'[forward.archive]\ntype = "file"\npath = "{tmp_path / "a.jsonl"}"\n')
    stored = store_records(data / "weightwarden.db",
                           [Event(Action.MODEL_CREATED, Category.FILE, f"e{n}", model=f"m{n}") for n in range(4)])
    outbox = Outbox(data / "weightwarden.db")
    try:
        outbox.ensure("es")
        outbox.ensure("archive")
        for record in stored[1:3]:  # what the _bulk transport does with a 400 item
            outbox.dead_letter("es", outbox.after(record.sequence - 1, 1)[0], "400 mapper_parsing_exception: "
                               f"failed to parse field [weightwarden.model] of {record.id}")
        outbox.advance("archive", stored[-1].sequence, len(stored))
    finally:
        outbox.close()
    assert main(["sync", "status", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    table, _, listing = text.partition("\n\n")
    assert [line.split()[:6] for line in table.splitlines()[1:]] == [
        ["es", "bulk", "-", "4", "0", "2"], ["archive", "file", str(stored[-1].sequence), "0", "0", "0"]]
    assert listing.startswith("es: 2 record(s) refused and kept as dead letters (newest 2):")
    listed = listing.splitlines()[2:]
    assert [line.split()[1] for line in listed] == [stored[2].id, stored[1].id]  # newest first
    assert all("400 mapper_parsing_exception" in line for line in listed)
    assert main(["sync", "status", "--json", "--dead-letters", "1", "--config", str(config)]) == 0
    rows = {row["destination"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["es"]["dead_letters"] == 2
    assert [d["record_id"] for d in rows["es"]["dead_letter_list"]] == [stored[2].id]
    assert rows["archive"]["dead_letter_list"] == [] and rows["archive"]["configured_in"] == "config file"
