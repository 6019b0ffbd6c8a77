"""Destinations changed while the agent runs: the forwarders follow without a restart (an unchanged one
keeps its forwarder and cursor), and changes made from the app are checked by the config schema, kept in
the data dir's drop-in (0640) and loaded again at the next start, with file:line errors like the config."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.agent.forward.conftest import store_records, wait_for
from weightwarden.agent.config import ConfigError, check_config, load_config, managed_destinations_file
from weightwarden.agent.events import Action, Category, Event, Record
from weightwarden.agent.forward.managed import ManagedDestinations
from weightwarden.agent.forward.manager import ForwardManager
from weightwarden.agent.store import Store
from weightwarden.agent.store.outbox import Outbox


def events(count: int, start: int = 0) -> list[Record]:
    return [Event(Action.MODEL_MODIFIED, Category.FILE, f"e{n}", details={"n": n}) for n in range(start, start + count)]


def sequences(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [json.loads(line)["sequence"] for line in path.read_text().splitlines()]


def write_config(tmp_path: Path, body: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\nmode = "user"\ndata_dir = "{tmp_path / "data"}"\n{body}')
    (tmp_path / "data").mkdir(exist_ok=True)
    return config


def cursor(database: str, name: str) -> int:
    outbox = Outbox(database)
    try:
        return outbox.cursor(name)
    finally:
        outbox.close()


def test_forwarders_follow_changes_live_and_keep_cursors(tmp_path: Path) -> None:
    keep, move, new = tmp_path / "keep.jsonl", tmp_path / "move.jsonl", tmp_path / "new.jsonl"
    config_file = write_config(tmp_path, f"""
[forward.keep]
type = "file"
path = "{keep}"
format = "native"
[forward.move]
type = "file"
path = "{move}"
format = "native"
""")
    config = load_config(config_file)
    Store(config.database_path).close()
    first = store_records(Path(config.database_path), events(30))
    manager = ForwardManager(config, lambda _record: None)
    manager.start()
    try:
        wait_for(lambda: sequences(keep) == sequences(move) == [r.sequence for r in first], timeout=15,
                 what="both destinations delivered the first records")
        kept = manager.forwarders[0]
        moved_to = tmp_path / "moved.jsonl"
        destinations = {d.name: d for d in config.forward}
        changed = load_config(write_config(tmp_path, f"""
[forward.move]
type = "file"
path = "{moved_to}"
format = "native"
[forward.new]
type = "file"
path = "{new}"
format = "native"
""")).forward
        changes = manager.apply((destinations["keep"], *changed))
        assert changes == {"keep": "unchanged", "move": "replaced", "new": "started"}
        assert manager.forwarders[0] is kept and kept._thread.is_alive()  # same forwarder, never stopped
        second = store_records(Path(config.database_path), events(10, 30))
        manager.wake()
        everything = [r.sequence for r in first + second]
        wait_for(lambda: sequences(keep) == everything and sequences(new) == everything
                 and sequences(moved_to) == [r.sequence for r in second], timeout=15,
                 what="the kept, replaced and new destinations delivering")
        assert sequences(move) == [r.sequence for r in first]  # the old target got nothing after the change
        wait_for(lambda: cursor(config.database_path, "move") == second[-1].sequence, timeout=10,
                 what="the replaced destination's cursor (the same row) at the end")
        changes = manager.apply((destinations["keep"],))
        assert changes == {"keep": "unchanged", "move": "stopped", "new": "stopped"}
        assert [f.name for f in manager.forwarders] == ["keep"]
        assert cursor(config.database_path, "move") == second[-1].sequence  # kept for a later return
        assert cursor(config.database_path, "keep") == second[-1].sequence
    finally:
        manager.stop(0)


def agent_parts(tmp_path: Path, body: str = "") -> tuple[Path, ForwardManager, ManagedDestinations]:
    config = load_config(write_config(tmp_path, body))
    Store(config.database_path).close()
    manager = ForwardManager(config, lambda _record: None)
    return Path(config.source or ""), manager, ManagedDestinations(config, manager.apply)


def test_every_problem_is_reported_and_nothing_is_written(tmp_path: Path) -> None:
    _config, manager, managed = agent_parts(tmp_path)
    reply = managed.set("siem", {"type": "syslog", "port": 70000, "transport": "ftp", "colour": "red"})
    assert not reply["ok"]
    text = " | ".join(reply["problems"])
    for expected in ("port must be between 0 and 65535", "transport must be one of", "unknown key 'colour'",
                     "needs address"):
        assert expected in text, text
    assert not reply.get("changes") and not os.path.exists(managed.file) and manager.forwarders == []
    assert "string, number or boolean" in managed.set("siem", {"type": "syslog", "address": ["a"]})["error"]
    assert "a destination needs a name" in managed.set("", {"type": "file"})["error"]
    bad_name = managed.set("a b", {"type": "file", "path": str(tmp_path / "x")})
    assert "letters, digits" in bad_name["error"]


def test_a_change_is_persisted_private_applied_and_loaded_at_the_next_start(tmp_path: Path) -> None:
    sink = tmp_path / "sink.jsonl"
    config_file, manager, managed = agent_parts(tmp_path, f'[forward.fixed]\ntype = "file"\npath = "{sink}.fixed"\n')
    manager.start()
    try:
        reply = managed.set("archive", {"type": "file", "path": str(sink), "format": "native"})
        assert reply["ok"] and reply["changes"] == {"fixed": "unchanged", "archive": "started"}, reply
        mode = os.stat(managed.file).st_mode
        assert stat.S_IMODE(mode) == 0o640
        stored = store_records(tmp_path / "data" / "weightwarden.db", events(5))
        manager.wake()
        wait_for(lambda: sequences(sink) == [r.sequence for r in stored], timeout=15,
                 what="the destination added live delivering")
        again = load_config(config_file)  # what the next start sees
        assert [(d.name, d.managed) for d in again.forward] == [("fixed", False), ("archive", True)]
        assert "config file" in managed.set("fixed", {"type": "file", "path": str(sink)})["error"]
        assert "config file" in managed.remove("fixed")["error"]
        # Secrets are never listed, and an edit that leaves them out keeps them, for the same receiver only.
        token = {"type": "hec", "url": "https://127.0.0.1:1", "token": "s3cret-token"}
        assert managed.set("splunk", token)["ok"]
        listed = {d["name"]: d for d in managed.describe()}
        assert "token" not in listed["splunk"]["values"] and listed["splunk"]["secrets_set"] == ["token"]
        assert "s3cret" not in json.dumps(managed.describe())
        assert managed.set("splunk", {"type": "hec", "url": "https://127.0.0.1:1", "index": "main"})["ok"]
        splunk = next(d for d in load_config(config_file).forward if d.name == "splunk")
        assert (splunk.token, splunk.url, splunk.index) == ("s3cret-token", "https://127.0.0.1:1", "main")
        elsewhere = managed.set("splunk", {"type": "hec", "url": "https://127.0.0.1:2", "index": "main"})
        assert not elsewhere["ok"] and "goes only to the receiver it was given for" in elsewhere["error"], elsewhere
        reply = managed.remove("archive")
        assert reply["ok"] and reply["changes"]["archive"] == "stopped"
        assert [d.name for d in load_config(config_file).forward] == ["fixed", "splunk"]
        assert "no destination 'archive'" in managed.remove("archive")["error"]
    finally:
        manager.stop(0)


def test_a_broken_drop_in_is_reported_with_file_and_line(tmp_path: Path) -> None:
    config_file = write_config(tmp_path, f'[forward.siem]\ntype = "file"\npath = "{tmp_path}/a"\n')
    drop_in = managed_destinations_file(load_config(config_file))
    Path(drop_in).write_text(f'# managed\n\n[forward.local]\ntype = "file"\npath = "{tmp_path}/b"\nmax_bytes = "big"\n'
                             f'\n[forward.siem]\ntype = "file"\npath = "{tmp_path}/c"\n')
    with pytest.raises(ConfigError) as raised:
        load_config(config_file)
    problems = [str(p) for p in raised.value.problems]
    assert any(p.startswith(f"{drop_in}:6: ") and "max_bytes must be an integer" in p for p in problems), problems
    assert any(p.startswith(f"{drop_in}:8: ") and "already defined in the config file" in p for p in problems)
    assert [str(p) for p in check_config(config_file)] == problems  # `weightwarden config check` says the same
    Path(drop_in).write_text("[agent]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"destinations.toml:1: only \[forward.NAME\] tables belong"):
        load_config(config_file)
