"""The pure renderers: escaping rules of each format, size limits, field mappings, and the backoff."""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.agent.forward.conftest import hostile_records, store_records
from tests.agent.forward.parsers import parse_5424, parse_cef, parse_cef_extension, parse_leef
from weightwarden.agent.config import ConfigError, load_config
from weightwarden.agent.events import Action, Alert, Category, Destination, Event, FileInfo
from weightwarden.agent.forward import cef, ecs, ocsf, syslog
from weightwarden.agent.forward.fields import flatten
from weightwarden.agent.forward.render import Renderer
from weightwarden.agent.forward.syslog_transport import SyslogTransport
from weightwarden.agent.forward.transport import backoff_seconds
from weightwarden.agent.store.outbox import OutboxRecord


def outbox_record(record: Event | Alert, sequence: int = 7) -> OutboxRecord:
    data = record.to_dict() | {"sequence": sequence}
    return OutboxRecord(sequence, record.kind, record.id, data)


@pytest.mark.parametrize("value", ["a=b", "back\\slash", "pipe|s", "new\nline", "cr\rlf\r\n", "\\=", "=\\", "é🦙"])
def test_cef_extension_escaping_round_trips(value: str) -> None:
    text = f"msg={cef.escape_extension(value)} act=x"
    assert parse_cef_extension(text) == {"msg": value, "act": "x"}


def test_cef_header_escapes_pipes_and_backslashes_and_flattens_lines() -> None:
    assert cef.escape_header("a|b\\c\nd") == "a\\|b\\\\c d"


def test_every_syslog_message_stays_under_8_kib() -> None:
    giant = Event(Action.AGENT_STARTED, Category.HOST, "é" * 50_000, model="m" * 9000)
    for body in ("cef", "leef"):
        data = syslog.message(flatten("event", giant.to_dict()), host="h" * 300, procid=1, body_format=body)
        assert len(data) <= syslog.MAX_MESSAGE_BYTES
        data.decode("utf-8")  # never cut inside a character
        parsed = parse_5424(data.decode())
        assert parsed.host == "h" * 255 and parsed.sd["weightwarden@32473"]["id"] == giant.id


def test_syslog_priority_and_msgid() -> None:
    alert = Alert("model-copy-to-removable-media-with-a-long-id", "t", 9, "m")
    parsed = parse_5424(syslog.message(flatten("alert", alert.to_dict()), host="h", procid=None).decode())
    assert parsed.pri == 10 * 8 + 2 and parsed.procid == "-"
    assert parsed.msgid == "model-copy-to-removable-media-wi"  # 32 characters at most
    header, ext = parse_cef(parsed.msg)
    assert header[4] == alert.rule_id and header[6] == "9" and ext["externalId"] == alert.id


def test_destination_address_maps_to_ip_or_host_fields() -> None:
    for address, cef_key, ecs_key in (("10.1.2.3", "dst", "ip"), ("::1", "dst", "ip"),
                                      ("huggingface.co", "dhost", "domain")):
        alert = Alert("r", "t", 5, "m", destination=Destination("network", address=address, port=443))
        flat = flatten("alert", alert.to_dict())
        assert parse_cef(cef.render(flat, "h"))[1][cef_key] == address
        assert ecs.document(flat, "h")["destination"] == {"address": address, ecs_key: address, "port": 443}


def test_ocsf_severity_and_types() -> None:
    assert [ocsf.severity_id(s) for s in (0, 1, 3, 4, 6, 7, 8, 9, 10)] == [1, 2, 2, 3, 3, 4, 4, 5, 5]
    for record in hostile_records():
        doc = ocsf.event(flatten(record.kind, record.to_dict()), "h")
        assert doc["type_uid"] == doc["class_uid"] * 100 + doc["activity_id"]


def test_ocsf_sealing_is_encrypt_and_decrypt_file_activity() -> None:
    """OCSF File System Activity has Encrypt (10) and Decrypt (11); a refused unseal is a Decrypt refused
    (its status says so: docs/siem-fields.md)."""
    for action, activity in ((Action.MODEL_SEALED, 10), (Action.MODEL_UNSEALED, 11), (Action.UNSEAL_REFUSED, 11)):
        record = Event(action, Category.FILE, "m", file=FileInfo(path="/m/model.safetensors"), model="m")
        doc = ocsf.event(flatten("event", record.to_dict()), "h")
        assert (doc["class_uid"], doc["activity_id"], doc["type_uid"]) == (1001, activity, 100100 + activity)


def test_leef_header_and_tabs() -> None:
    record = hostile_records()[0]
    header, attrs = parse_leef(parse_5424(Renderer("h", "leef").syslog_message(outbox_record(record)).decode()).msg)
    assert header[0] == "LEEF:2.0" and header[4] == "model-created" and header[5] == "x09"
    assert attrs["procName"] == "sc|p=x" and attrs["fileHash"] == "ab" * 32


def test_backoff_grows_with_jitter_and_respects_the_cap() -> None:
    rng = random.Random(1)
    delays = [backoff_seconds(attempt, 1.0, 60.0, rng) for attempt in range(12)]
    assert all(0.5 * min(60, 2 ** a) <= d <= min(60, 2 ** a) for a, d in enumerate(delays))
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not lockstep


def test_plain_tcp_is_octet_counted_and_udp_is_one_datagram_per_message() -> None:
    records = [outbox_record(r, n) for n, r in enumerate(hostile_records(), start=1)]
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        received = bytearray()

        def accept() -> None:
            conn, _ = server.accept()
            with conn:
                while chunk := conn.recv(65536):
                    received.extend(chunk)

        reader = threading.Thread(target=accept)
        reader.start()
        tcp = SyslogTransport(Renderer("h", "cef"), address="127.0.0.1", port=server.getsockname()[1],
                              transport="tcp", resend_window=0.05)
        tcp.send_and_confirm(records, time.monotonic() + 5)
        tcp.close()
        reader.join(timeout=10)
    frames, data = [], bytes(received)
    while data:
        length, _, rest = data.partition(b" ")
        frames.append(rest[: int(length)])
        data = rest[int(length):]
    assert [parse_5424(f.decode()).sd["weightwarden@32473"]["seq"] for f in frames] == ["1", "2", "3", "4"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp_server:
        udp_server.bind(("127.0.0.1", 0))
        udp_server.settimeout(5)
        udp = SyslogTransport(Renderer("h", "cef"), address="127.0.0.1", port=udp_server.getsockname()[1],
                              transport="udp")
        assert udp.send(records).confirmed == 4
        udp.close()
        datagrams = [udp_server.recv(65536) for _ in records]
    assert [parse_5424(d.decode()).sd["weightwarden@32473"]["id"] for d in datagrams] == [r.id for r in records]


def test_forward_config_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("""[forward.siem]
type = "syslog"
address = "siem.example.org"
format = "ecs"

[forward.splunk]
type = "hec"
url = "https://splunk:8088"

[forward."bad name"]
type = "file"
path = "relative/path"
batchsize = 3
""")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    messages = [f"{p.line}: {p.message}" for p in caught.value.problems]
    assert any(m.startswith("4: ") and "format 'ecs' does not suit type 'syslog'" in m for m in messages)
    assert any(m.startswith("6: ") and "needs token or token_file" in m for m in messages)
    assert any("must be an absolute path" in m for m in messages)
    assert any(m.startswith("13: ") and "did you mean 'batch_size'" in m for m in messages)
    assert any("letters, digits" in m for m in messages)


def test_forward_config_loads_destinations_in_order(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("""[forward.siem]
type = "syslog"
address = "siem.example.org"
client_cert = "/etc/ww/agent.pem"
client_key = "/etc/ww/agent.key"

[forward.elastic]
type = "bulk"
url = "https://es:9200"
api_key = "k"
""")
    loaded = load_config(config)
    assert [(d.name, d.type) for d in loaded.forward] == [("siem", "syslog"), ("elastic", "bulk")]
    assert loaded.forward[0].transport == "tls" and loaded.forward[0].port == 0 and loaded.forward[0].format == ""


def test_alert_fields_come_from_the_typed_evidence_the_engine_wrote(tmp_path: Path) -> None:
    from weightwarden.agent.detect.copy import CopyCandidate
    from weightwarden.agent.detect.engine import DetectionEngine
    from weightwarden.agent.detect.rules import load_rules
    from weightwarden.agent.events import ModelFile

    source = ModelFile("/models/llama/model.safetensors", "safetensors", 4096, "llama", sha256="cd" * 32)
    copy = ModelFile("/media/usb/llama.safetensors", "safetensors", 4096, "llama", sha256="cd" * 32)
    rules = load_rules()
    alert = DetectionEngine(rules).copy(CopyCandidate(copy, (source,), destination_kind="removable"))
    assert alert is not None
    (stored,) = store_records(tmp_path / "ww.db", [alert])
    flat = flatten("alert", stored.to_dict())
    techniques = rules.get("model-copy").techniques  # type: ignore[union-attr]
    assert flat.techniques == techniques and flat.atlas == ("AML.T0035", "AML.T0025")
    assert (flat.file_path, flat.file_size, flat.file_format, flat.file_sha256) == (
        copy.path, 4096, "safetensors", "cd" * 32)
    doc = ecs.document(flat, "h")
    assert doc["threat"]["framework"] == ["MITRE ATT&CK", "MITRE ATLAS"]
    assert set(doc["threat"]["technique"]["id"]) >= {"T1005", "T1052", "AML.T0035", "AML.T0025"}
    assert "T1052.001" in doc["threat"]["technique"]["subtechnique"]["id"]
    assert doc["weightwarden"]["atlas"] == ["AML.T0035", "AML.T0025"] and doc["file"]["hash"] == {"sha256": "cd" * 32}
    finding = ocsf.event(flat, "h")["finding_info"]
    assert [a.get("sub_technique", a["technique"])["uid"] for a in finding["attacks"]] == list(flat.techniques)
    assert "T1052.001" in flat.attack and not any(t.startswith("AML.") for t in flat.attack)
