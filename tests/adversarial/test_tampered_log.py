"""Attacks on the evidence by someone with write access to the database (root: see conftest.py), each
made with plain SQL on a log the real agent wrote, each checked with `weightwarden verify` as users run it.
All of these passed `verify` before issue 15."""

from __future__ import annotations

import json
import time

from tests.adversarial.conftest import CHECKPOINT_SECONDS, Log
from tests.agent.cli.helpers import json_lines, run_cli
from weightwarden.agent.keys import PUBLIC_KEY_NAME


def test_the_untouched_log_verifies(log: Log) -> None:
    code, report, _ = log.verify("--against", str(log.siem_copy))
    assert code == 0, report["findings"]
    assert report["clean_stop"] and report["signatures_checked"] >= 3
    assert report["against"][0]["compared"] == report["records"] - report["against"][0]["not_yet_delivered"]


def test_falsified_alert_columns_fail_verify(log: Log) -> None:
    log.db().execute("update alerts set severity = 1, model = 'nothing', status = 'false-positive' where id = ?",
                     [log.alert_id])
    code, report, _ = log.verify()
    assert code == 1
    named = [f for f in report["findings"] if f["record_id"] == log.alert_id]
    assert named and "severity column says 1" in named[0]["message"]


def test_falsified_status_alone_fails_verify(log: Log) -> None:
    """The admin acknowledged the alert (a chained review); the status column now claims a false positive."""
    log.db().execute("update alerts set status = 'false-positive' where id = ?", [log.alert_id])
    code, report, _ = log.verify()
    assert code == 1
    (finding,) = [f for f in report["findings"] if f["record_id"] == log.alert_id]
    assert "status column says 'false-positive'" in finding["message"] and "'acknowledged'" in finding["message"]


def test_hidden_alert_fails_verify(log: Log) -> None:
    """`latest = 0` takes an alert out of every listing and count."""
    log.db().execute("update alerts set latest = 0 where id = ?", [log.alert_id])
    code, report, _ = log.verify()
    assert code == 1 and any(f["record_id"] == log.alert_id for f in report["findings"])


def test_falsified_alert_is_flagged_by_the_alerts_command(log: Log) -> None:
    log.db().execute("update alerts set severity = 1, model = 'nothing', status = 'false-positive' where id = ?",
                     [log.alert_id])
    listed = run_cli("alerts", "--json", "--config", str(log.config))
    (alert,) = [a for a in json_lines(listed.stdout) if a["id"] == log.alert_id]
    assert "severity column says 1" in alert["rejected_by_verify"]
    table = run_cli("alerts", "--config", str(log.config))
    assert "REJECTED" in table.stdout and "rejected by verify" in table.stderr


def test_relinked_edit_with_checkpoints_relabelled_fails_with_the_pinned_key(log: Log) -> None:
    """Edit a signed alert (record and columns agree), relink the chain, relabel every later checkpoint and
    the clean stop's signature as heartbeats in the `action` column verify used to find them by."""
    conn = log.db()
    (record,) = conn.execute("select record from alerts where id = ?", [log.alert_id]).fetchone()
    edited = json.loads(record)
    edited["severity"], edited["model"] = 1, "nothing"
    conn.execute("update alerts set record = ?, severity = 1, model = 'nothing' where id = ?",
                 [json.dumps(edited, sort_keys=True), log.alert_id])
    log.relink()
    conn.execute("update events set action = 'heartbeat' where action in ('chain-checkpoint', 'agent-stopped')")
    code, report, _ = log.verify("--public-key", str(log.pinned_key))
    assert code == 1
    assert any("differs from the one signed" in f["message"] for f in report["findings"])


def test_relinked_edit_with_checkpoints_rewritten_fails_once_the_tail_is_overdue(log: Log) -> None:
    """Same edit, and every later checkpoint rewritten (record and column) as a heartbeat, the stop's signature
    dropped: nothing signed is left after the edit, so the unsigned tail's age gives it away."""
    conn = log.db()
    (record, sequence) = conn.execute("select record, sequence from alerts where id = ?", [log.alert_id]).fetchone()
    edited = json.loads(record)
    edited["severity"] = 1
    conn.execute("update alerts set record = ?, severity = 1 where id = ?", [json.dumps(edited, sort_keys=True),
                                                                            log.alert_id])
    for row_id, text in conn.execute("select id, record from events where sequence > ? and action in"
                                     " ('chain-checkpoint', 'agent-stopped')", [sequence]).fetchall():
        forged = json.loads(text)
        forged["event"]["action"] = "heartbeat"
        forged["details"] = {"coverage": "full"}
        conn.execute("update events set record = ?, action = 'heartbeat' where id = ?",
                     [json.dumps(forged, sort_keys=True), row_id])
    log.relink()
    newest = conn.execute("select max(time) from events").fetchone()[0]
    time.sleep(max(0.0, 2 * CHECKPOINT_SECONDS + 0.5 - (time.time() - _epoch(newest))))
    code, report, _ = log.verify("--public-key", str(log.pinned_key))
    assert code == 1
    assert any(f["problem"] == "unsigned" for f in report["findings"]), report["findings"]


def test_truncated_tail_fails(log: Log) -> None:
    """Delete the newest records, down to just after a checkpoint: what is left is a whole, signed chain."""
    conn = log.db()
    checkpoints = [s for (s,) in conn.execute("select sequence from events where action = 'chain-checkpoint'"
                                             " order by sequence")]
    cut = checkpoints[len(checkpoints) // 2]
    conn.execute("delete from events where sequence > ?", [cut])
    conn.execute("delete from alerts where sequence > ?", [cut])
    code, report, _ = log.verify()
    assert code == 1 and any(f["problem"] == "unsigned" for f in report["findings"]), report["findings"]


def test_truncated_tail_shows_up_against_the_siem_copy(log: Log) -> None:
    conn = log.db()
    last = conn.execute("select max(sequence) from events").fetchone()[0]
    conn.execute("delete from events where sequence > ?", [last - 5])
    conn.execute("delete from alerts where sequence > ?", [last - 5])
    code, report, _ = log.verify("--unsigned", "--against", str(log.siem_copy))
    assert code == 1
    removed = sorted(f["sequence"] for f in report["findings"] if f["problem"] == "removed")
    assert removed and removed[-1] == last and all(s > last - 5 for s in removed)


def test_edit_shows_up_against_the_siem_copy(log: Log) -> None:
    conn = log.db()
    (record,) = conn.execute("select record from alerts where id = ?", [log.alert_id]).fetchone()
    conn.execute("update alerts set record = ? where id = ?", [record.replace('"severity": ', '"severity": 1'),
                                                               log.alert_id])
    code, report, _ = log.verify("--unsigned", "--against", str(log.siem_copy))
    assert code == 1
    assert any(f["problem"] == "different" and f["record_id"] == log.alert_id for f in report["findings"])


def test_deleted_public_key_fails_unless_unsigned(log: Log) -> None:
    (log.data / PUBLIC_KEY_NAME).unlink()
    code, report, _ = log.verify()
    assert code == 1 and report["findings"][0]["problem"] == "key"
    code, report, _stderr = log.verify("--unsigned")
    assert code == 0 and report["signatures"] is False
    plain = run_cli("verify", "--unsigned", "--config", str(log.config))
    assert plain.returncode == 0 and "signatures not checked" in plain.stderr


def _epoch(text: str) -> float:
    from weightwarden.agent.events import parse_time

    return parse_time(text).timestamp()
