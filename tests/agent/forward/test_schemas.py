"""Schema-exact output: every record the agent emits, as ECS 8.17 and as OCSF 1.3.0, checked against the
schemas' own definition files (pinned in tests/data/ecs and tests/data/ocsf, see their READMEs); the
ATT&CK/ATLAS ids of alerts in ECS, OCSF, CEF (read back by pycef) and LEEF (through syslog-ng)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pycef  # type: ignore[import-untyped]
import pytest

from tests.agent.forward import ecs_schema
from tests.agent.forward.certs import Pki
from tests.agent.forward.conftest import forwarding, store_records
from tests.agent.forward.every_action import MADE_HERE, every_record
from tests.agent.forward.ocsf_schema import PINNED, Schema, check_event
from tests.agent.forward.parsers import parse_5424, parse_leef
from tests.agent.forward.receivers import SyslogNg, syslog_ng
from tests.agent.forward.running_agent import start_agent, stop_agent, write_agent_config
from tests.agent.forward.test_syslog_receivers import tls_destination
from tests.conftest import write_safetensors
from tests.waiting import wait_for
from weightwarden.agent.events import Action, Alert, Event, Record
from weightwarden.agent.forward import cef, ecs, ocsf
from weightwarden.agent.forward.fields import flatten
from weightwarden.agent.forward.render import Renderer
from weightwarden.agent.store.outbox import OutboxRecord


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[Record]:
    return every_record(tmp_path_factory.mktemp("every-action"))


def outbox(record: Record, sequence: int = 3) -> OutboxRecord:
    return OutboxRecord(sequence, record.kind, record.id, record.to_dict() | {"sequence": sequence})


def label(record: Record) -> str:
    return f"alert {record.rule_id}" if isinstance(record, Alert) else str(record.action)


def by_action(records: list[Record], action: Action) -> Event:
    return next(r for r in records if isinstance(r, Event) and r.action == action)


def test_every_action_has_a_record(records: list[Record]) -> None:
    made = {r.action for r in records if isinstance(r, Event)}
    assert made == set(Action), f"no record for {set(Action) - made}: add one to tests/agent/forward/every_action.py"
    assert set(Action) > MADE_HERE
    assert {r.rule_id for r in records if isinstance(r, Alert)} >= {"model-copy", "model-egress-budget",
                                                                   "evidence-tampered", "access-denied"}


def test_every_action_is_mapped_on_purpose() -> None:
    """A new action is not left to the fallback class (OCSF Application Lifecycle Other, ECS host/info)."""
    assert set(Action) <= ocsf.mapped_actions(), set(Action) - ocsf.mapped_actions()
    assert set(Action) <= ecs.mapped_actions(), set(Action) - ecs.mapped_actions()


def test_pinned_definitions_are_the_published_files() -> None:
    for folder in (PINNED, ecs_schema.PINNED.parent):
        listed = [line.split() for line in (folder / "README").read_text().splitlines()
                  if len(line.split()) == 2 and len(line.split()[0]) == 64]
        assert listed, folder
        for digest, name in listed:
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
        pinned = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "README"}
        assert pinned == {name for _, name in listed}


def test_every_record_is_an_ocsf_1_3_0_event(records: list[Record]) -> None:
    schema = Schema()
    problems = {}
    for record in records:
        found = check_event(Renderer("ws-01.example", "ocsf").document(outbox(record)), schema)
        if found:
            problems[label(record)] = found
    assert not problems, json.dumps(problems, indent=1)


def test_the_checker_finds_what_reviewers_found(records: list[Record]) -> None:
    """The old mistakes, each caught: no actor, no app, activity 99 without a name, a host name as an IP."""
    schema = Schema()
    good = ocsf.event(flatten("event", by_action(records, Action.MODEL_OPENED).to_dict()), "ws-01")
    assert check_event(good, schema) == []
    no_actor = {k: v for k, v in good.items() if k != "actor"}
    assert any("actor: required" in p for p in check_event(no_actor, schema))
    other = good | {"activity_id": 99, "type_uid": 100199}
    assert any("99 (Other) without its activity_name" in p for p in check_event(other, schema))
    started = ocsf.event(flatten("event", by_action(records, Action.AGENT_STARTED).to_dict()), "ws-01")
    assert any("app: required" in p for p in check_event({k: v for k, v in started.items() if k != "app"}, schema))
    connection = {**good, "class_uid": 4001, "category_uid": 4, "activity_id": 1, "type_uid": 400101,
                  "dst_endpoint": {"ip": "huggingface.co", "port": 443}}
    del connection["file"]
    assert any("does not match the ip_t pattern" in p for p in check_event(connection, schema))
    invented = good | {"weightwarden": 1}
    assert any("not an attribute of file_activity" in p for p in check_event(invented, schema))


def test_ocsf_activities_endpoints_traffic_and_actors(records: list[Record]) -> None:
    def doc(record: Record) -> dict[str, Any]:
        return Renderer("ws-01", "ocsf").document(outbox(record))

    activities = {Action.MODEL_CREATED: 1, Action.MODEL_READ: 2, Action.MODEL_WRITTEN: 3, Action.MODEL_MODIFIED: 3,
                  Action.MODEL_DELETED: 4, Action.MODEL_MOVED: 5, Action.MODEL_OPENED: 14, Action.MOUNT_ADDED: 12,
                  Action.MOUNT_REMOVED: 13, Action.ACCESS_DENIED: 14}
    for action, activity in activities.items():
        got = doc(by_action(records, action))
        assert (got["class_uid"], got["activity_id"]) == (1001, activity), action
        assert got["actor"] and got["file"]["name"]
    read = doc(by_action(records, Action.MODEL_READ))
    assert read["actor"]["process"]["pid"] == 4242 and read["actor"]["user"] == {"name": "ana"}
    moved = doc(by_action(records, Action.MODEL_MOVED))
    assert moved["file"]["path"] == "/a/m.safetensors" and moved["file_result"]["path"] == "/b/m.safetensors"
    denied = doc(by_action(records, Action.ACCESS_DENIED))
    assert denied["action_id"] == 2 and denied["disposition_id"] == 2 and "security_control" in \
        denied["metadata"]["profiles"]
    started = doc(by_action(records, Action.AGENT_STARTED))
    assert (started["class_uid"], started["activity_id"]) == (6002, 3) and started["app"]["vendor_name"]
    assert doc(by_action(records, Action.SCAN_FINISHED))["class_uid"] == 6007  # not File System Activity
    assert doc(by_action(records, Action.MODEL_DISCOVERED))["class_uid"] == 5007
    connections = [doc(r) for r in records if isinstance(r, Event) and r.action == Action.NETWORK_CONNECTION]
    assert [c["activity_id"] for c in connections] == [1, 6, 2, 2]  # Open, Traffic, Close
    assert connections[1]["dst_endpoint"] == {"ip": "203.0.113.7", "port": 443}
    assert connections[1]["src_endpoint"] == {"ip": "10.0.0.2", "port": 40000}
    assert connections[1]["traffic"] == {"bytes_out": 1 << 20, "bytes_in": 4096}
    assert connections[2]["dst_endpoint"]["ip"] == "2001:db8::7"
    assert connections[3]["connection_info"] == {"direction_id": 2, "direction": "Outbound", "protocol_name": "udp"}
    host = ocsf.event(flatten("event", _connection_to(records, "huggingface.co").to_dict()), "ws-01")
    assert host["dst_endpoint"] == {"hostname": "huggingface.co", "port": 443}
    assert check_event(host, Schema()) == []
    odd = ocsf.event(flatten("event", _connection_to(records, "files_srv.").to_dict()), "ws_01.corp")
    assert odd["dst_endpoint"] == {"name": "files_srv.", "port": 443} and odd["device"]["name"] == "ws_01.corp"
    assert check_event(odd, Schema()) == []


def test_every_record_is_an_ecs_document(records: list[Record]) -> None:
    problems = {}
    for record in records:
        found = ecs_schema.check_document(Renderer("ws-01", "ecs").document(outbox(record)))
        if found:
            problems[label(record)] = found
    assert not problems, json.dumps(problems, indent=1)


def test_the_ecs_checker_finds_what_reviewers_found(records: list[Record]) -> None:
    """A scan error typed `error` in category file, an invented field, a scalar where ECS wants an array."""
    good = Renderer("ws-01", "ecs").document(outbox(by_action(records, Action.SCAN_ERROR)))
    assert ecs_schema.check_document(good) == []
    typed_error = {**good, "event": {**good["event"], "type": ["error"]}}
    assert any("'error' is expected by none of the categories" in p for p in ecs_schema.check_document(typed_error))
    assert any("not an ECS field" in p for p in ecs_schema.check_document({**good, "destination": {"hostname": "x"}}))
    scalar = {**good, "event": {**good["event"], "category": "file"}}
    assert any("normalizes it to an array" in p for p in ecs_schema.check_document(scalar))
    assert any("not an allowed value" in p
               for p in ecs_schema.check_document({**good, "event": {**good["event"], "kind": "finding"}}))
    assert any("not an IP address" in p for p in ecs_schema.check_document({**good, "source": {"ip": "ws-01"}}))


def test_ecs_custom_fields_keep_one_type_whatever_the_action(records: list[Record]) -> None:
    """One index mapping must take every record: a key under weightwarden.* holds one kind of value."""
    kinds: dict[str, set[str]] = {}
    for record in records:
        doc = Renderer("ws-01", "ecs").document(outbox(record))
        ecs_schema.leaf_kinds(doc["weightwarden"], "weightwarden", kinds, label(record))
    clashes = {key: sorted(found) for key, found in kinds.items() if len({k.split("@")[0] for k in found}) > 1}
    assert not clashes, json.dumps(clashes, indent=1)


def test_ecs_categorization_and_network_fields(records: list[Record]) -> None:
    def doc(record: Record) -> dict[str, Any]:
        return Renderer("ws-01", "ecs").document(outbox(record))

    read = doc(by_action(records, Action.MODEL_READ))
    assert read["event"]["category"] == ["file"] and read["event"]["type"] == ["access"]
    error = doc(by_action(records, Action.SCAN_ERROR))
    assert error["event"]["type"] == ["access"] and error["event"]["outcome"] == "failure"
    closed = [doc(r) for r in records if isinstance(r, Event) and r.action == Action.NETWORK_CONNECTION][2]
    assert closed["event"]["type"] == ["connection", "end"]
    assert closed["destination"] == {"address": "2001:db8::7", "ip": "2001:db8::7", "port": 443, "bytes": 4096}
    assert closed["source"] == {"address": "10.0.0.2", "ip": "10.0.0.2", "port": 40000, "bytes": 1 << 20}
    assert closed["network"] == {"direction": "egress", "transport": "tcp", "type": "ipv6", "bytes": (1 << 20) + 4096}
    assert "destination" not in closed["weightwarden"]["details"]  # in ECS fields, not only in details
    named = ecs.document(flatten("event", _connection_to(records, "huggingface.co").to_dict()), "ws-01")
    assert named["destination"] == {"address": "huggingface.co", "domain": "huggingface.co", "port": 443, "bytes": 4096}
    assert ecs_schema.check_document(named) == []


def test_alert_techniques_in_ecs_and_ocsf(records: list[Record]) -> None:
    alerts = [r for r in records if isinstance(r, Alert) and r.evidence.techniques]
    assert alerts
    for alert in alerts:
        ids = alert.evidence.techniques
        doc = ecs.document(flatten("alert", alert.to_dict()), "ws-01")
        technique = doc["threat"]["technique"]
        named = set(technique["id"]) | set(technique.get("subtechnique", {}).get("id", []))
        assert set(ids) <= named, (ids, technique)
        frameworks = doc["threat"]["framework"]
        assert ("MITRE ATLAS" in frameworks) == any(i.startswith("AML.") for i in ids)
        event = ocsf.event(flatten("alert", alert.to_dict()), "ws-01")
        attacks = event["finding_info"]["attacks"]
        uids = {a["technique"]["uid"] for a in attacks} | {a["sub_technique"]["uid"] for a in attacks
                                                            if "sub_technique" in a}
        assert set(ids) <= uids
    usb = next(a for a in alerts if "T1052.001" in a.evidence.techniques)
    doc = ecs.document(flatten("alert", usb.to_dict()), "ws-01")
    sub = doc["threat"]["technique"]["subtechnique"]
    assert "T1052.001" in sub["id"] and "Exfiltration over USB" in sub["name"]
    assert "T1052" in doc["threat"]["technique"]["id"]
    assert "Exfiltration Over Physical Medium" in doc["threat"]["technique"]["name"]


def test_alert_techniques_in_cef_read_by_pycef(records: list[Record]) -> None:
    alerts = [r for r in records if isinstance(r, Alert) and r.evidence.techniques]
    for alert in alerts:
        ids = alert.evidence.techniques
        message = parse_5424(Renderer("ws-01", "cef").syslog_message(outbox(alert)).decode()).msg
        parsed = pycef.parse(message)
        assert parsed is not None and parsed["DeviceEventClassID"] == alert.rule_id
        attack = [i for i in ids if not i.startswith("AML.")]
        atlas = [i for i in ids if i.startswith("AML.")]
        assert parsed.get("mitreAttackTechniques", "").split(",") == (attack or [""])
        assert parsed.get("mitreAtlasTechniques", "").split(",") == (atlas or [""])
    plain = cef.render(flatten("event", by_action(records, Action.MODEL_OPENED).to_dict()), "ws-01")
    assert "flexString" not in plain


@pytest.mark.skipif(syslog_ng() is None, reason="syslog-ng not installed")
def test_alert_techniques_in_leef_through_syslog_ng(records: list[Record], tmp_path: Path, pki: Pki) -> None:
    alerts = [r for r in records if isinstance(r, Alert) and r.evidence.techniques][:6]
    receiver = SyslogNg(tmp_path / "syslog-ng", pki).start()
    try:
        database = tmp_path / "ww.db"
        stored = store_records(database, list(alerts))
        with forwarding(tls_destination(receiver, pki, format="leef"), database):
            got = wait_for(lambda: receiver.messages() if len(receiver.messages()) >= len(stored) else None,
                           timeout=20, what=f"{len(stored)} LEEF messages")
    finally:
        receiver.kill()
    by_id = {m["sd_params"]["id"]: m for m in got}
    for alert in stored:
        assert isinstance(alert, Alert)
        message = by_id[alert.id]
        header, attrs = parse_leef(message["msg"])  # the MSG as syslog-ng's RFC 5424 parser split it
        assert header[0] == "LEEF:2.0" and header[4] == alert.rule_id
        ids = alert.evidence.techniques
        assert attrs.get("mitreAttack") == (",".join(i for i in ids if not i.startswith("AML.")) or None)
        assert attrs.get("mitreAtlas") == (",".join(i for i in ids if i.startswith("AML.")) or None)


@pytest.mark.e2e
def test_a_running_agent_writes_only_schema_exact_records(tmp_path: Path) -> None:
    """The real agent (its file pipeline, evidence recorder, forwarders) with an ECS and an OCSF file
    destination: a model is found, created, changed, moved, deleted; every line of both files conforms."""
    models, watched = tmp_path / "models", tmp_path / "watched"
    write_safetensors(models / "base" / "model.safetensors", seed=1)
    watched.mkdir()
    out = {name: tmp_path / "out" / f"{name}.jsonl" for name in ("ecs", "ocsf")}
    config = write_agent_config(tmp_path, models, watched, f"""[forward.ecs]
type = "file"
format = "ecs"
path = "{out['ecs']}"
[forward.ocsf]
type = "file"
format = "ocsf"
path = "{out['ocsf']}"
""")

    def actions() -> set[str]:
        if not out["ocsf"].exists():
            return set()
        return {json.loads(line)["metadata"]["event_code"] for line in out["ocsf"].read_text().splitlines()
                if line.endswith("}")}

    agent = start_agent(config, tmp_path / "agent.log")
    try:
        wait_for(lambda: {"agent-started", "scan-finished", "model-discovered"} <= actions(), timeout=60,
                 what="the start, the first scan and its model")
        fresh = write_safetensors(models / "new" / "model.safetensors", seed=2)
        wait_for(lambda: "model-created" in actions(), timeout=30, what="model-created")
        write_safetensors(fresh, seed=3)
        wait_for(lambda: "model-modified" in actions(), timeout=30, what="model-modified")
        moved = models / "new" / "renamed.safetensors"
        fresh.rename(moved)
        wait_for(lambda: "model-moved" in actions(), timeout=30, what="model-moved")
        shutil.copy(moved, watched / "copy.safetensors")
        moved.unlink()
        wait_for(lambda: {"model-deleted", "heartbeat", "chain-checkpoint"} <= actions(), timeout=30,
                 what="model-deleted, a heartbeat and a checkpoint")
    finally:
        stop_agent(agent, tmp_path / "agent.log")
    seen = actions()  # the agent has exited: the files are complete
    assert "agent-stopped" in seen
    schema = Schema()
    problems: dict[str, list[str]] = {}
    for line in out["ocsf"].read_text().splitlines():
        event = json.loads(line)
        found = check_event(event, schema)
        if found:
            problems[event["metadata"]["event_code"]] = found
    for line in out["ecs"].read_text().splitlines():
        doc = json.loads(line)
        found = ecs_schema.check_document(doc)
        if found:
            problems[f"ecs {doc['event']['action']}"] = found
    assert not problems, json.dumps(problems, indent=1)
    assert len(seen) >= 9, seen


def _connection_to(records: list[Record], host: str) -> Event:
    """A connection event as connection_event makes it, to a peer known by name rather than by address."""
    closed = [r for r in records if isinstance(r, Event) and r.action == Action.NETWORK_CONNECTION][1]
    details = {**closed.details, "destination": {"kind": "network", "address": host, "port": 443}}
    return Event(closed.action, closed.category, closed.message, process=closed.process, details=details,
                 time=closed.time)


def test_the_docs_table_says_what_the_code_does(records: list[Record]) -> None:
    """docs/siem-fields.md lists each action's OCSF class and activity and ECS category and type."""
    docs = Path(__file__).resolve().parents[3] / "docs" / "siem-fields.md"
    rows = {}
    for line in docs.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5:
            rows[cells[0].strip("`")] = cells[1:]
    assert rows
    seen = set()
    for record in records:
        if not isinstance(record, Event):
            continue
        flat = flatten("event", record.to_dict())
        key = f"{record.action} ({flat.phase})" if record.action == Action.NETWORK_CONNECTION else str(record.action)
        class_uid, activity = ocsf.class_and_activity(flat)
        categories, types = ecs.categorization(flat)
        assert key in rows, f"docs/siem-fields.md has no row for {key}"
        ocsf_class, ocsf_activity, ecs_categories, ecs_types = rows[key]
        assert ocsf_class.endswith(f" {class_uid}") and ocsf_activity.split()[0] == str(activity), key
        assert ecs_categories == ", ".join(categories) and ecs_types == ", ".join(types), key
        seen.add(key)
    assert seen == set(rows), set(rows) - seen
