"""`weightwarden verify --from URL --host NAME --public-key FILE`: one agent's records verified where the SIEM
holds them. A real store signed by the real checkpoint code (agent/evidence.py), forwarded by the real
forwarder into osmem-server (OpenSearch-compatible, over `_bulk`) or a JSON-lines file, then tampered with
there the way someone with write access to the SIEM would."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.forward.conftest import destination, forwarding, hostile_records, wait_for
from tests.agent.forward.ecs_schema import check_document
from tests.agent.forward.test_bulk_osmem import call
from tests.agent.siem.corpus import INDEX as TEMPLATE_INDEX
from tests.agent.siem.corpus import Cluster
from weightwarden.agent.cli.main import main
from weightwarden.agent.config import load_config
from weightwarden.agent.events import Action, Alert, Category, Event, FileInfo, Record
from weightwarden.agent.evidence import Evidence
from weightwarden.agent.keys import PUBLIC_KEY_NAME, AgentKey
from weightwarden.agent.store import RecordWriter, Store
from weightwarden.agent.store.chain import checkpoint_message, link
from weightwarden.agent.store.outbox import Outbox

pytest.importorskip("osmem_server", reason="osmem-server is in the test extra")

HOST = "ww-test-host"  # the agent name the forwarding helper gives (tests/agent/forward/conftest.py)
INDEX = "logs-weightwarden-ww"


@dataclass
class SignedLog:
    database: Path
    public_key: Path  # the key as registered SIEM-side: `weightwarden keys export` output
    last: int  # the last sequence
    checkpoints: list[int]  # sequences of the checkpoint records
    signed: list[int]  # the sequence each signed


def _records(n: int) -> list[Record]:
    return [Alert("model-copy", "copy", 7, f"copy {n}", paths=(f"/models/m{n}", f"/media/usb/m{n}"))
            if n % 5 == 0 else Event(Action.MODEL_CREATED, Category.FILE, f"model created {n}",
                                     file=FileInfo(path=f"/models/m{n}.safetensors", size=n))]


def signed_log(tmp_path: Path, batches: int = 3, per_batch: int = 10, forged_at: int | None = None,
               stopped: bool = False) -> SignedLog:
    """Batches of records, each followed by a checkpoint the agent's own code signs, then one record no
    signature covers yet; `forged_at`: that batch's checkpoint is signed by another key under the agent's key
    id (a forgery); `stopped`: the log ends with a clean stop's signed agent-stopped instead."""
    data = tmp_path / "data"
    config_file = tmp_path / "agent.toml"
    config_file.write_text(f'[agent]\ndata_dir = "{data}"\nname = "{HOST}"\n')
    config = load_config(config_file)
    store = Store(config.database_path)
    writer = RecordWriter(store)
    evidence = Evidence(config, store, writer, lambda record: store.write([record]), dict)
    checkpoints, signed = [], []
    try:
        store.write(hostile_records())
        for batch in range(batches):
            for n in range(per_batch):
                store.write(_records(batch * per_batch + n))
            if batch == forged_at:
                other = AgentKey.load_or_create(tmp_path / "other")
                assert evidence.key is not None
                sequence, chain_hash = store.chain_head()
                store.write([Event(Action.CHAIN_CHECKPOINT, Category.HOST, "forged", details={
                    "signed_sequence": sequence, "signed_hash": chain_hash, "key_id": evidence.key.id,
                    "algorithm": "ed25519",
                    "signature": other.sign(checkpoint_message(sequence, chain_hash, evidence.key.id))})])
            else:
                assert evidence.checkpoint("test")
            head, _ = store.chain_head()
            checkpoints.append(head)
            signed.append(head - 1)
        store.write(_records(999))  # one newer record no signature covers yet
        if stopped:
            store.write([Event(Action.AGENT_STOPPED, Category.HOST, "agent stopped",
                               details=evidence.final_signature())])
        last, _ = store.chain_head()
    finally:
        writer.close()
        store.close()
    public_key = tmp_path / "registered.pem"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["keys", "export", "--config", str(config_file)]) == 0
    public_key.write_text(out.getvalue())
    assert public_key.read_text() == (data / PUBLIC_KEY_NAME).read_text()
    return SignedLog(config.database_path, public_key, last, checkpoints, signed)


def verify(*args: str) -> tuple[int, dict[str, Any], str]:
    """`weightwarden verify --json ...` in process: (exit code, report, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["verify", "--json", *args])
    return code, (json.loads(out.getvalue()) if out.getvalue().strip() else {}), err.getvalue()


def problems(report: dict[str, Any]) -> list[tuple[str, int]]:
    return [(f["problem"], f["sequence"]) for f in report["findings"]]


def forwarded_to(log: SignedLog, **values: Any) -> None:
    """The real forwarder delivers the whole log to one destination (cursor at the end)."""
    with forwarding(destination("central", **values), log.database):
        outbox = Outbox(log.database)
        try:
            wait_for(lambda: outbox.cursor("central") == log.last, timeout=20, what="everything delivered")
        finally:
            outbox.close()


# ------------------------------------------------------------------------------------------ OpenSearch




def indexed(cluster: str, sequence: int) -> tuple[str, dict[str, Any]]:
    """(_id, _source) of the document of one record."""
    call(f"{cluster}/{INDEX}/_refresh", "POST")
    hits = call(f"{cluster}/{INDEX}/_search", "POST",
                {"query": {"term": {"event.sequence": sequence}}, "size": 10})["hits"]["hits"]
    assert len(hits) == 1, hits
    return hits[0]["_id"], hits[0]["_source"]


@pytest.fixture
def in_index(cluster: str, tmp_path: Path) -> tuple[str, SignedLog]:
    log = signed_log(tmp_path)
    forwarded_to(log, type="bulk", url=cluster, index=INDEX, format="ecs")
    return cluster, log


def from_index(cluster: str, log: SignedLog, *extra: str) -> tuple[int, dict[str, Any], str]:
    return verify("--from", f"{cluster}/logs-weightwarden-*", "--host", HOST, "--public-key", str(log.public_key),
                  *extra)


def test_the_index_verifies_paged_with_search_after(in_index: tuple[str, SignedLog]) -> None:
    cluster, log = in_index
    _, seventh = indexed(cluster, 7)  # delivered twice, into a rolled-over index: on the first page boundary
    call(f"{cluster}/logs-weightwarden-older/_doc/{seventh['event']['id']}", "PUT", seventh)
    call(f"{cluster}/logs-weightwarden-older/_refresh", "POST")
    code, report, _ = from_index(cluster, log, "--page-size", "7")  # 39 documents: six pages
    assert (code, report["ok"], report["findings"], report["duplicates"]) == (0, True, [], 1)
    assert (report["records"], report["first_sequence"], report["last_sequence"]) == (log.last, 1, log.last)
    assert report["checkpoints"] == report["signatures_valid"] == report["signatures_checked"] == 3
    assert report["last_signed_sequence"] == log.signed[-1] and report["unsigned_tail"] == log.last - log.signed[-1]
    _, doc = indexed(cluster, 2)  # what the index holds of the chain: the chained text and both links
    assert check_document(doc) == []  # event.original is ECS's; weightwarden.chain our namespace
    assert doc["weightwarden"]["chain"]["hash"] == link(doc["weightwarden"]["chain"]["previous"], doc["event"]["kind"],
                                                        doc["event"]["original"])


def test_the_text_report_and_other_hosts(in_index: tuple[str, SignedLog], tmp_path: Path) -> None:
    cluster, log = in_index
    call(f"{cluster}/{INDEX}/_doc/foreign", "PUT", {**indexed(cluster, 3)[1], "host": {"name": "elsewhere"}})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["verify", "--from", f"{cluster}/{INDEX}", "--host", HOST, "--public-key", str(log.public_key),
                     "--page-size", "5"])
    assert code == 0, out.getvalue()
    assert out.getvalue().startswith(f"OK: {log.last} records of {HOST} (1..{log.last})"), out.getvalue()
    assert f"last signed record {log.signed[-1]}" in out.getvalue()
    code, report, _ = verify("--from", f"{cluster}/{INDEX}", "--host", HOST, "--public-key", str(log.public_key))
    assert (code, report["records"], report["duplicates"]) == (0, log.last, 0)  # the query left "elsewhere" out


def test_a_record_deleted_in_the_index_is_a_gap(in_index: tuple[str, SignedLog]) -> None:
    cluster, log = in_index
    for sequence in (12, 13):
        doc_id, _ = indexed(cluster, sequence)
        call(f"{cluster}/{INDEX}/_doc/{doc_id}", "DELETE")
    call(f"{cluster}/{INDEX}/_refresh", "POST")
    code, report, _ = from_index(cluster, log, "--page-size", "4")
    assert code == 1 and problems(report) == [("missing", 12)]
    assert "record(s) 12..13 are not in the store after record 11" in report["findings"][0]["message"]
    assert report["missing"] == 2 and report["records"] == log.last - 2
    # the records after the gap still verify, each on its own link, and the signatures after it hold
    assert report["signatures_valid"] == 3 and report["last_signed_sequence"] == log.signed[-1]


def test_a_record_changed_in_the_index_breaks_the_chain_there(in_index: tuple[str, SignedLog]) -> None:
    cluster, log = in_index
    doc_id, doc = indexed(cluster, 9)  # a visible field, the chained text left alone
    doc["file"]["path"] = "/models/innocent.txt"
    call(f"{cluster}/{INDEX}/_doc/{doc_id}", "PUT", doc)
    doc_id, doc = indexed(cluster, 20)  # the chained text itself, its link left alone
    doc["event"]["original"] = doc["event"]["original"].replace("model created", "model looked at")
    call(f"{cluster}/{INDEX}/_doc/{doc_id}", "PUT", doc)
    doc_id, doc = indexed(cluster, 30)  # text and fields changed, its own link recomputed, the next left alone
    for part, key in ((doc["event"], "original"), (doc, "message")):
        part[key] = part[key].replace("model created", "model looked at")
    chain = doc["weightwarden"]["chain"]
    chain["hash"] = link(chain["previous"], doc["event"]["kind"], doc["event"]["original"])
    call(f"{cluster}/{INDEX}/_doc/{doc_id}", "PUT", doc)
    call(f"{cluster}/{INDEX}/_refresh", "POST")
    code, report, _ = from_index(cluster, log)
    assert code == 1 and problems(report) == [("altered", 9), ("altered", 20), ("altered", 20), ("altered", 31)]
    assert "fields differ from the chained record" in report["findings"][0]["message"]
    assert "no longer matches its chain link" in report["findings"][2]["message"]
    assert "does not chain to record 30" in report["findings"][3]["message"]


def test_a_rewritten_and_relinked_chain_fails_at_the_signature(in_index: tuple[str, SignedLog]) -> None:
    """Someone without the agent's key edits a record and recomputes every link after it: each record then
    chains, but the signed checkpoint after it names another link."""
    cluster, log = in_index
    previous = None
    for sequence in range(17, log.last + 1):  # 17: an event "model created 11"
        doc_id, doc = indexed(cluster, sequence)
        chain = doc["weightwarden"]["chain"]
        if sequence == 17:
            doc["event"]["original"] = doc["event"]["original"].replace("model created", "model looked at")
            doc["message"] = doc["message"].replace("model created", "model looked at")
        else:
            chain["previous"] = previous
        chain["hash"] = previous = link(chain["previous"], doc["event"]["kind"], doc["event"]["original"])
        call(f"{cluster}/{INDEX}/_doc/{doc_id}", "PUT", doc)
    call(f"{cluster}/{INDEX}/_refresh", "POST")
    code, report, _ = from_index(cluster, log)
    assert code == 1 and problems(report) == [("altered", log.signed[1]), ("altered", log.signed[2])], \
        report["findings"]
    assert f"differs from the one signed by checkpoint {log.checkpoints[1]}" in report["findings"][0]["message"]
    assert report["last_signed_sequence"] == log.signed[0]


def test_a_forged_checkpoint_fails_and_so_does_a_wrong_key(cluster: str, tmp_path: Path) -> None:
    log = signed_log(tmp_path, forged_at=1)
    forwarded_to(log, type="bulk", url=cluster, index=INDEX, format="ecs")
    code, report, _ = from_index(cluster, log)
    assert code == 1 and problems(report) == [("signature", log.checkpoints[1])]
    assert (report["signatures_checked"], report["signatures_valid"]) == (3, 2)
    assert report["last_signed_sequence"] == log.signed[2]
    stranger = AgentKey.load_or_create(tmp_path / "stranger")
    (tmp_path / "stranger.pem").write_text((tmp_path / "stranger" / PUBLIC_KEY_NAME).read_text())
    assert stranger.id
    code, report, _ = verify("--from", f"{cluster}/{INDEX}", "--host", HOST, "--public-key",
                             str(tmp_path / "stranger.pem"))
    assert code == 1 and [p for p, _ in problems(report)] == ["signature"] * 3
    assert report["last_signed_sequence"] == 0


def test_clear_errors(in_index: tuple[str, SignedLog], tmp_path: Path) -> None:
    cluster, log = in_index
    code, report, _ = from_index(cluster, log, "--host", "nobody")  # the last --host wins
    assert code == 1 and report["records"] == 0 and problems(report) == [("no-records", 0)]
    assert "no records of host 'nobody'" in report["findings"][0]["message"]
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = verify("--from", f"http://127.0.0.1:{port}/{INDEX}", "--host", HOST, "--public-key",
                          str(log.public_key))
    assert code == 2 and "cannot reach the store" in err, err
    code, _, err = verify("--from", f"{cluster}/no-such-index", "--host", HOST, "--public-key", str(log.public_key))
    assert code == 2 and "no such index" in err, err
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    code, _, err = verify("--from", f"{cluster}/{INDEX}", "--host", HOST, "--public-key", str(bad))
    assert code == 2 and "--public-key" in err, err
    code, _, err = verify("--from", f"{cluster}/{INDEX}", "--host", HOST)
    assert code == 2 and "needs --public-key" in err, err


# ------------------------------------------------------------------------------------------ JSON lines


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


@pytest.mark.parametrize("fmt", ["native", "ecs"])
def test_a_json_lines_copy_verifies_and_names_a_gap_and_an_edit(tmp_path: Path, fmt: str) -> None:
    log = signed_log(tmp_path)
    out = tmp_path / "siem" / "weightwarden.jsonl"
    out.parent.mkdir()
    forwarded_to(log, type="file", path=str(out), format=fmt, max_bytes=8192, keep=50, batch_size=5)
    assert list(out.parent.glob("weightwarden.jsonl.*")), "the copy rotated: its older files are read too"
    code, report, err = verify("--from", f"file://{out}", "--host", HOST, "--public-key", str(log.public_key))
    assert report, err
    assert (code, report["records"], report["signatures_valid"]) == (0, log.last, 3), report["findings"]

    def sequence_of(line: str) -> int:
        doc = json.loads(line)
        return int(doc["sequence"] if fmt == "native" else doc["event"]["sequence"])

    files = [path for path in [out, *out.parent.glob("weightwarden.jsonl.*")] if path.exists()]
    for path in files:  # a resend after a restart repeats a line: a duplicate, not a finding
        kept = lines_of(path)
        if any(sequence_of(line) == 5 for line in kept):
            path.write_text("".join(kept + [line for line in kept if sequence_of(line) == 5]), encoding="utf-8")
    code, report, _ = verify("--from", str(out), "--host", HOST, "--public-key", str(log.public_key))
    assert (code, report["duplicates"]) == (0, 1), report["findings"]

    for path in files:
        kept = []
        for line in lines_of(path):
            if sequence_of(line) == 17:
                continue  # deleted
            if sequence_of(line) == 23:
                line = line.replace("model created", "model glanced at")
            kept.append(line)
        path.write_text("".join(kept), encoding="utf-8")
    code, report, _ = verify("--from", str(out), "--host", HOST, "--public-key", str(log.public_key))
    assert code == 1 and problems(report) == [("missing", 17), ("altered", 23)], report["findings"]
    assert "no longer matches its chain link" in report["findings"][1]["message"]


def test_a_json_lines_file_that_is_not_there(tmp_path: Path) -> None:
    log = signed_log(tmp_path, batches=1, per_batch=1)
    code, _, err = verify("--from", str(tmp_path / "none.jsonl"), "--host", HOST, "--public-key",
                          str(log.public_key))
    assert code == 2 and "no such file" in err, err


def test_a_removed_tail_is_told_from_a_gap_by_its_age(in_index: tuple[str, SignedLog]) -> None:
    """No chain shows records after the last one stored (the checkpoints that would sign them went with
    them); what shows is records left unsigned longer than the agent allows, with no clean stop."""
    cluster, log = in_index
    for sequence in (log.checkpoints[-1], log.last):  # the last checkpoint and the record after it
        doc_id, _ = indexed(cluster, sequence)
        call(f"{cluster}/{INDEX}/_doc/{doc_id}", "DELETE")
    call(f"{cluster}/{INDEX}/_refresh", "POST")
    code, report, _ = from_index(cluster, log)
    assert (code, report["last_sequence"]) == (0, log.checkpoints[-1] - 1)  # young: it may be in flight
    aged = time.monotonic() + 0.5
    wait_for(lambda: time.monotonic() > aged, timeout=5, what="the newest records older than 2 x 0.2 s")
    code, report, _ = from_index(cluster, log, "--checkpoint-seconds", "0.2")
    assert code == 1 and problems(report) == [("missing-tail", log.checkpoints[1] + 1)], report["findings"]
    assert "covered by no signature" in report["findings"][0]["message"]
    code, report, _ = from_index(cluster, log, "--checkpoint-seconds", "0")  # the tail left alone
    assert code == 0, report["findings"]


def test_a_clean_stop_signs_the_end(tmp_path: Path) -> None:
    log = signed_log(tmp_path, stopped=True)
    out = tmp_path / "weightwarden.jsonl"
    forwarded_to(log, type="file", path=str(out), format="ecs")
    aged = time.monotonic() + 0.5
    wait_for(lambda: time.monotonic() > aged, timeout=5, what="the newest records older than 2 x 0.2 s")
    code, report, _ = verify("--from", str(out), "--host", HOST, "--public-key", str(log.public_key),
                             "--checkpoint-seconds", "0.2")
    assert (code, report["clean_stop"], report["last_signed_sequence"]) == (0, True, log.last - 1), report
    lines = lines_of(out)  # without the stop, the same store ends unsigned
    out.write_text("".join(lines[:-1]), encoding="utf-8")
    code, report, _ = verify("--from", str(out), "--host", HOST, "--public-key", str(log.public_key),
                             "--checkpoint-seconds", "0.2")
    assert code == 1 and problems(report) == [("missing-tail", log.last - 1)], report["findings"]


def test_against_the_index_still_compares_with_the_local_log(in_index: tuple[str, SignedLog], tmp_path: Path) -> None:
    """`verify --against URL` reads the index through the same paged search; the chain fields the documents
    now carry are not differences."""
    cluster, log = in_index
    code, report, _ = verify("--config", str(tmp_path / "agent.toml"), "--against", f"{cluster}/{INDEX}")
    assert (code, report["findings"]) == (0, []) and report["against"][0]["compared"] == log.last
    doc_id, doc = indexed(cluster, 9)
    doc["file"]["path"] = "/models/innocent.txt"
    call(f"{cluster}/{INDEX}/_doc/{doc_id}", "PUT", doc)
    code, report, _ = verify("--config", str(tmp_path / "agent.toml"), "--against", f"{cluster}/{INDEX}")
    assert code == 1 and problems(report) == [("different", 9)]


def test_through_the_shipped_index_template(cluster: str, tmp_path: Path) -> None:
    """The index template in siem/ maps the documents (event.original and weightwarden.chain included) and
    the data stream's name pattern is what --from reads."""
    Cluster(cluster).install_template()
    log = signed_log(tmp_path)
    forwarded_to(log, type="bulk", url=cluster, index=TEMPLATE_INDEX, format="ecs")
    code, report, _ = verify("--from", f"{cluster}/logs-weightwarden.*", "--host", HOST, "--public-key",
                             str(log.public_key), "--page-size", "10")
    assert (code, report["records"], report["signatures_valid"], report["findings"]) == (0, log.last, 3, [])
