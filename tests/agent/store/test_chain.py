"""The hash chain and its signed checkpoints: every kind of tampering is named, and `verify` exits 1."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from pathlib import Path

import pytest

from tests.agent.cli.helpers import run_cli
from weightwarden.agent.cli.main import main
from weightwarden.agent.events import Action, Alert, Category, Event, FileInfo
from weightwarden.agent.keys import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME, AgentKey, key_id
from weightwarden.agent.store import Store
from weightwarden.agent.store.chain import GENESIS, checkpoint_message, link


def _event(n: int) -> Event:
    return Event(Action.MODEL_CREATED, Category.FILE, f"model created {n}",
                 file=FileInfo(path=f"/models/m{n}.safetensors", size=n))


def sign_head(store: Store, key: AgentKey) -> None:
    sequence, chain_hash = store.chain_head()
    store.write([Event(Action.CHAIN_CHECKPOINT, Category.HOST, "checkpoint",
                       details={"signed_sequence": sequence, "signed_hash": chain_hash, "key_id": key.id,
                                "algorithm": "ed25519",
                                "signature": key.sign(checkpoint_message(sequence, chain_hash, key.id))})])


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, AgentKey]:
    """A data dir with 20 records (events and alerts mixed), a checkpoint at 10 and one at the end."""
    data = tmp_path / "data"
    key = AgentKey.load_or_create(data)
    store = Store(data / "weightwarden.db")
    for n in range(1, 10):
        store.write([_event(n)] if n % 3 else [Alert("model-copy", "copy", 7, f"copy {n}", paths=(f"/a{n}",))])
    sign_head(store, key)
    for n in range(11, 20):
        store.write([_event(n)])
    sign_head(store, key)
    store.close()
    return data, key


def verify(data: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    """`weightwarden verify --json`, in process (the subprocess form is tested below)."""
    config = data.parent / "config.toml"
    config.write_text(f'[agent]\ndata_dir = "{data}"\n')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["verify", "--json", "--config", str(config), *extra])
    return code, json.loads(out.getvalue())


def db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "weightwarden.db", isolation_level=None)


def test_intact_log_verifies_with_signatures(log: tuple[Path, AgentKey]) -> None:
    data, _key = log
    code, report = verify(data)
    assert code == 0 and report["ok"]
    assert report["records"] == 20 and report["checkpoints"] == 2 and report["signatures_checked"] == 2
    assert report["last_signed_sequence"] == 19 and report["unsigned_tail"] == 1


def test_links_follow_sequence_across_events_and_alerts(log: tuple[Path, AgentKey]) -> None:
    data, _key = log
    rows = db(data).execute("select sequence, kind, record, chain_hash from (select sequence, 'event' kind, record,"
                            " chain_hash from events union all select sequence, 'alert', record, chain_hash"
                            " from alerts) order by sequence").fetchall()
    previous = GENESIS
    for _sequence, kind, record, chain_hash in rows:
        previous = link(previous, kind, record)
        assert chain_hash == previous
    assert {kind for _s, kind, _r, _h in rows} == {"event", "alert"}


def test_edited_record_is_named(log: tuple[Path, AgentKey]) -> None:
    data, _key = log
    conn = db(data)
    (record,) = conn.execute("select record from events where sequence = 5").fetchone()
    edited = json.loads(record)
    edited["file"]["path"] = "/innocent/nothing.txt"
    conn.execute("update events set record = ? where sequence = 5", [json.dumps(edited, sort_keys=True)])
    code, report = verify(data)
    assert code == 1
    first = report["findings"][0]
    assert (first["problem"], first["sequence"]) == ("altered", 5)
    assert first["record_id"] == edited["id"]


def test_edited_alert_severity_inside_the_record_is_named(log: tuple[Path, AgentKey]) -> None:
    data, _key = log
    conn = db(data)
    (record,) = conn.execute("select record from alerts where sequence = 6").fetchone()
    conn.execute("update alerts set record = ? where sequence = 6", [record.replace('"severity": 7', '"severity": 0')])
    code, report = verify(data)
    assert code == 1 and report["findings"][0]["problem"] == "altered" and report["findings"][0]["sequence"] == 6


def test_deleted_record_is_named(log: tuple[Path, AgentKey]) -> None:
    data, _key = log
    db(data).execute("delete from events where sequence = 7")
    code, report = verify(data)
    assert code == 1
    first = report["findings"][0]
    assert (first["problem"], first["sequence"]) == ("removed", 7)
    assert "record(s) 7 were removed after record 6" in first["message"]


def test_deleted_tail_is_caught_by_the_signed_checkpoint(log: tuple[Path, AgentKey]) -> None:
    data, _key = log
    conn = db(data)
    # Remove records 15..20, including the last checkpoint, so the chain itself looks intact: but the
    # checkpoint at 10 is fine and... the tail is only caught when a surviving checkpoint signed past it.
    conn.execute("delete from events where sequence >= 15 and sequence < 20")
    code, report = verify(data)
    assert code == 1
    first = report["findings"][0]
    assert first["problem"] == "removed" and first["sequence"] == 15


def test_inserted_record_is_named(log: tuple[Path, AgentKey]) -> None:
    data, _key = log
    conn = db(data)
    forged = Event(Action.MODEL_DELETED, Category.FILE, "model deleted (forged)",
                   file=FileInfo(path="/models/m1.safetensors"), sequence=8)
    row = conn.execute("select chain_hash from events where sequence = 7").fetchone()
    record = json.dumps(forged.to_dict(), sort_keys=True)
    # Into the other table, sharing sequence 8 with a real alert-free event slot: a plausible forgery.
    conn.execute("insert into alerts (id, sequence, time, rule_id, severity, title, model, status, record, chain_hash)"
                 " values (?, 8, ?, 'x', 0, 'x', null, 'open', ?, ?)",
                 [forged.id, forged.to_dict()["time"], record, link(row[0], "alert", record)[::-1]])
    code, report = verify(data)
    assert code == 1
    first = report["findings"][0]
    assert (first["problem"], first["record_id"]) == ("inserted", forged.id)


def test_inserted_record_with_renumbered_successors_is_named(log: tuple[Path, AgentKey]) -> None:
    """The careful forger: a valid link for the new row and every later sequence shifted up by one."""
    data, _key = log
    conn = db(data)
    for table in ("events", "alerts"):
        conn.execute(f"update {table} set sequence = -sequence - 1 where sequence >= 12")
        conn.execute(f"update {table} set sequence = -sequence where sequence < 0")
    (previous,) = conn.execute("select chain_hash from events where sequence = 11").fetchone()
    forged = Event(Action.MODEL_DELETED, Category.FILE, "model deleted (forged)", sequence=12)
    record = json.dumps(forged.to_dict(), sort_keys=True)
    conn.execute("insert into events (id, sequence, time, action, category, severity, record, chain_hash)"
                 " values (?, 12, ?, 'model-deleted', 'file', 0, ?, ?)",
                 [forged.id, forged.to_dict()["time"], record, link(previous, "event", record)])
    code, report = verify(data)
    assert code == 1
    first = report["findings"][0]
    assert (first["problem"], first["record_id"]) == ("inserted", forged.id)


def test_rewritten_chain_is_caught_by_the_signature(log: tuple[Path, AgentKey]) -> None:
    """Edit a record (and the column derived from it) and recompute every later link: only the signed
    checkpoint can tell."""
    data, _key = log
    conn = db(data)
    (record,) = conn.execute("select record from events where sequence = 4").fetchone()
    conn.execute("update events set record = ?, path = replace(path, 'm4.', 'xx.') where sequence = 4",
                 [record.replace("m4.", "xx.")])
    rows = conn.execute("select sequence, kind, record from (select sequence, 'event' kind, record from events"
                        " union all select sequence, 'alert', record from alerts) order by sequence").fetchall()
    previous = GENESIS
    for sequence, kind, text in rows:
        previous = link(previous, kind, text)
        conn.execute(f"update {kind}s set chain_hash = ? where sequence = ?", [previous, sequence])
    code, report = verify(data)
    assert code == 1
    first = report["findings"][0]
    assert first["problem"] == "altered" and first["sequence"] == 9
    assert "differs from the one signed" in first["message"]


def test_forged_checkpoint_signature_is_named(log: tuple[Path, AgentKey], tmp_path: Path) -> None:
    data, key = log
    other = AgentKey.load_or_create(tmp_path / "attacker")
    conn = db(data)
    (record,) = conn.execute("select record from events where sequence = 10").fetchone()
    checkpoint = json.loads(record)
    details = checkpoint["details"]
    details["signature"] = other.sign(checkpoint_message(details["signed_sequence"], details["signed_hash"], key.id))
    conn.execute("update events set record = ? where sequence = 10", [json.dumps(checkpoint, sort_keys=True)])
    code, report = verify(data)
    assert code == 1
    problems = {(f["problem"], f["sequence"]) for f in report["findings"]}
    assert ("signature", 10) in problems and ("altered", 10) in problems


def test_verify_prints_the_first_break_and_exits_1(log: tuple[Path, AgentKey]) -> None:
    data, _key = log
    db(data).execute("delete from events where sequence = 4")
    config = data.parent / "config.toml"
    config.write_text(f'[agent]\ndata_dir = "{data}"\n')
    result = run_cli("verify", "--config", str(config))
    assert result.returncode == 1
    assert result.stdout.startswith("FAILED: record(s) 4 were removed after record 3")


def test_key_files_and_export(log: tuple[Path, AgentKey]) -> None:
    data, key = log
    assert (data / PRIVATE_KEY_NAME).stat().st_mode & 0o777 == 0o600
    assert (data / PUBLIC_KEY_NAME).stat().st_mode & 0o077 == 0o044
    config = data.parent / "config.toml"
    config.write_text(f'[agent]\ndata_dir = "{data}"\n')
    result = run_cli("keys", "export", "--json", "--config", str(config))
    exported = json.loads(result.stdout)
    assert result.returncode == 0 and exported["key_id"] == key.id == key_id(key.public)
    assert "PRIVATE" not in result.stdout and exported["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert AgentKey.load_or_create(data).id == key.id  # loaded, not replaced


def test_wrong_public_key_fails_every_signature(log: tuple[Path, AgentKey], tmp_path: Path) -> None:
    data, _key = log
    other = AgentKey.load_or_create(tmp_path / "other")
    code, report = verify(data, "--public-key", str(tmp_path / "other" / PUBLIC_KEY_NAME))
    assert code == 1 and {f["problem"] for f in report["findings"]} == {"signature"}
    assert other.id in report["findings"][0]["message"]


def test_migration_links_records_stored_before_the_chain(tmp_path: Path) -> None:
    from weightwarden.agent.store import migrations

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    import sqlite_utils

    old = sqlite_utils.Database(conn)
    known = list(migrations.MIGRATIONS)
    cut = [name for name, _ in known].index("0004_hash_chain")
    for name, apply in known[:cut]:
        with conn:
            if "_migrations" not in old.table_names():
                old.table("_migrations").create({"name": str, "applied_at": str}, pk="name")
            apply(old)
            old.table("_migrations").insert({"name": name, "applied_at": "2026-01-01T00:00:00.000Z"})
    for n in (1, 2, 3):
        event = _event(n)
        # the columns every version of Store.write derived from the record (the path, here)
        conn.execute("insert into events (id, sequence, time, action, category, severity, path, record) values"
                     " (?, ?, ?, 'model-created', 'file', 0, ?, ?)",
                     [event.id, n, event.to_dict()["time"], f"/models/m{n}.safetensors",
                      json.dumps({**event.to_dict(), "sequence": n}, sort_keys=True)])
    conn.commit()
    conn.close()
    store = Store(path)
    store.write([_event(4)])
    report = store.verify_chain(None)
    store.close()
    assert report.ok and report.records == 4


def test_shutdown_signature_in_agent_stopped_is_checked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = AgentKey.load_or_create(data)
    store = Store(data / "weightwarden.db")
    store.write([_event(1), _event(2)])
    sequence, chain_hash = store.chain_head()
    signed = {"signed_sequence": sequence, "signed_hash": chain_hash, "key_id": key.id, "algorithm": "ed25519",
              "reason": "shutdown", "signature": key.sign(checkpoint_message(sequence, chain_hash, key.id))}
    store.write([Event(Action.AGENT_STOPPED, Category.HOST, "stopped", details={"checkpoint": signed})])
    report = store.verify_chain(key.public)
    assert report.ok and report.signatures_checked == 1 and report.last_signed_sequence == 2
    store.close()
    db(data).execute("update events set record = replace(record, 'm2.', 'xx.'), chain_hash = ? where sequence = 2",
                     ["0" * 64])
    store = Store(data / "weightwarden.db", read_only=True)
    report = store.verify_chain(key.public)
    store.close()
    assert (report.findings[0].problem, report.findings[0].sequence) == ("altered", 2)
