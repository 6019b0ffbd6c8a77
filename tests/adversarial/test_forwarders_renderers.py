"""Every renderer over arbitrary text, parsed back by the independent parsers of forwarders_parsers.py.

Attack (issue 15): text the agent records is chosen by whoever names a file, writes a model's metadata or
starts a process: lone surrogates (not encodable as UTF-8: UnicodeEncodeError), NUL, NEL (U+0085) and
LINE SEPARATOR (U+2028) that split a line for some readers, terminal controls, `|`, `=`, `\\`, `]`, and
file names that are not UTF-8. Whatever it is, each renderer must produce bytes its receiver parses, that
hold no raw line break, and that give back the text (lone surrogates shown as `\\uXXXX`; controls the
format cannot carry as spaces; line breaks as the format's newline escape), as docs/forwarding.md says.
"""

from __future__ import annotations

import json
import os
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adversarial.forwarders_parsers import (
    parse_bulk,
    parse_cef,
    parse_hec_batch,
    parse_json_line,
    parse_leef,
    parse_rfc5424,
)
from weightwarden.agent.events import Action, Alert, Category, Destination, Event, FileInfo, ProcessInfo, Record
from weightwarden.agent.forward.bulk_transport import BulkTransport
from weightwarden.agent.forward.file_transport import FileTransport
from weightwarden.agent.forward.hec_transport import HecTransport
from weightwarden.agent.forward.render import Renderer
from weightwarden.agent.store.outbox import OutboxRecord

# Bounded so the suite stays fast: each property runs in well under a second.
BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE = ["\udcff", "\ud800", "\udfff", "\x00", "\x85", "\u2028", "\u2029", "\n", "\r", "\t", "\x0b", "\x1b",
           "\x9b", "\x7f", "|", "=", "\\", "]", '"', " ", "é", "🦙", "\\n", "\\=", "\\u2028"]
characters = st.one_of(st.sampled_from(HOSTILE), st.characters(), st.characters(categories=["Cs"]))
texts = st.lists(characters, max_size=24).map("".join)
# A file name is bytes: os.fsdecode keeps those that are not UTF-8 as lone surrogates (surrogateescape).
names = st.binary(max_size=24).map(lambda raw: os.fsdecode(raw.replace(b"/", b"_")))


def visible(text: str) -> str:
    """The text as the store gives it back (JSON: an escaped surrogate pair reads back as one character),
    with each lone surrogate as its `\\uXXXX` text, as Python's backslashreplace writes it."""
    return str(json.loads(json.dumps(text))).encode("utf-8", "backslashreplace").decode("utf-8")


def is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"


LINE_BREAKS = "\x85\u2028\u2029"


def cef_extension_value(text: str) -> str:
    return "".join(ch if ch in "\n\r" else "\n" if ch in LINE_BREAKS else " " if is_control(ch) else ch
                   for ch in visible(text))


def leef_value(text: str) -> str:
    return "".join(ch if ch in "\n\r\t" else "\n" if ch in LINE_BREAKS else " " if is_control(ch) else ch
                   for ch in visible(text))


def one_line(text: str) -> str:
    """Header fields and structured data: every control character and line break becomes a space."""
    return "".join(" " if is_control(ch) or ch in LINE_BREAKS else ch for ch in visible(text))


def deep_visible(value: Any) -> Any:
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {visible(k): deep_visible(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_visible(v) for v in value]
    return value


@st.composite
def records(draw: st.DrawFn) -> Record:
    process = ProcessInfo(pid=draw(st.integers(1, 2**22)), name=draw(texts), executable=draw(texts),
                          command_line=draw(texts), user=draw(texts), ppid=1)
    if draw(st.booleans()):
        return Event(Action.MODEL_CREATED, Category.FILE, draw(texts),
                     file=FileInfo(path=f"/m/{draw(names)}/{draw(names)}", size=draw(st.integers(0, 2**40)),
                                   format=draw(texts), sha256="ab" * 32),
                     previous_path=draw(st.none() | names), model=draw(texts), process=process,
                     severity=draw(st.integers(0, 10)), details={draw(texts): draw(texts), "metadata": {
                         draw(texts): draw(texts)}})
    return Alert(draw(texts) or "rule", draw(texts), draw(st.integers(0, 10)), draw(texts),
                 paths=(f"/m/{draw(names)}", f"/media/{draw(names)}"), model=draw(texts), process=process,
                 destination=Destination("network", address=draw(texts), port=443, path=draw(texts)))


def stored(record: Record, sequence: int = 41) -> OutboxRecord:
    """What the forwarder reads back: the record as the store keeps it (JSON, surrogates as escapes)."""
    data = json.loads(json.dumps(record.to_dict() | {"sequence": sequence}))
    return OutboxRecord(sequence, record.kind, record.id, data)


def syslog(record: Record, body: str) -> tuple[Any, list[str], dict[str, str]]:
    message = parse_rfc5424(Renderer("ww-host", body, procid=99).syslog_message(stored(record)))
    header, values = (parse_cef if body == "cef" else parse_leef)(message.msg)
    return message, header, values


@BOUNDED
@given(records())
def test_cef_parses_back(record: Record) -> None:
    _message, header, ext = syslog(record, "cef")
    assert ext["externalId"] == record.id and ext["cn1"] == "41" and ext["msg"] == cef_extension_value(record.message)
    assert ext["cs2"] == cef_extension_value(record.model or "")
    assert record.process is not None
    assert ext["cs3"] == cef_extension_value(record.process.command_line or "")
    assert ext.get("suser", "") == cef_extension_value(record.process.user or "")
    assert ext.get("sproc", "") == cef_extension_value(record.process.name or "")
    if isinstance(record, Alert):
        assert header[4] == one_line(record.rule_id) and header[5] == one_line(record.title or record.rule_id)
        assert ext["filePath"] == cef_extension_value(record.paths[-1])
        assert ext["oldFilePath"] == cef_extension_value(record.paths[0])
        assert ext["cs5"] == cef_extension_value(record.destination.path or "")  # type: ignore[union-attr]
    else:
        assert record.file is not None
        assert header[5] == one_line(record.message or "model-created")
        assert ext["filePath"] == cef_extension_value(record.file.path)
        assert ext["fname"] == cef_extension_value(record.file.path.rsplit("/", 1)[-1])


@BOUNDED
@given(records())
def test_leef_parses_back(record: Record) -> None:
    _message, header, attrs = syslog(record, "leef")
    assert attrs["externalId"] == record.id and attrs["msg"] == leef_value(record.message)
    assert attrs["model"] == leef_value(record.model or "")
    assert record.process is not None
    assert attrs["procCmdLine"] == leef_value(record.process.command_line or "")
    assert attrs["usrName"] == leef_value(record.process.user or "")
    if isinstance(record, Alert):
        assert header[4] == one_line(record.rule_id)
        assert attrs["filePath"] == leef_value(record.paths[-1])
    else:
        assert record.file is not None
        assert attrs["filePath"] == leef_value(record.file.path)
        assert attrs["fileName"] == leef_value(record.file.path.rsplit("/", 1)[-1])


@BOUNDED
@given(records(), st.sampled_from(["cef", "leef"]))
def test_rfc5424_structured_data_parses_back(record: Record, body: str) -> None:
    message, _header, _values = syslog(record, body)
    params = message.structured_data["weightwarden@32473"]
    assert params["id"] == record.id and params["seq"] == "41" and params["kind"] == record.kind
    assert params["model"] == one_line((record.model or "")[:256])
    assert message.hostname == "ww-host" and message.app_name == "weightwarden" and message.procid == "99"


def test_the_crafted_metadata_value_reaches_cef_and_leef_visible() -> None:
    record = Event(Action.MODEL_CREATED, Category.FILE, "model created: x\udcffy\x85z\u2028w", model="m\udcff")
    _message, _header, ext = syslog(record, "cef")
    assert ext["msg"] == "model created: x\\udcffy\nz\nw" and ext["cs2"] == "m\\udcff"
    _message, _header, attrs = syslog(record, "leef")
    assert attrs["msg"] == "model created: x\\udcffy\nz\nw"


@BOUNDED
@given(records())
def test_ecs_over_bulk_parses_back(record: Record) -> None:
    transport = BulkTransport(Renderer("ww-host", "ecs"), url="http://127.0.0.1:9", index="ww")
    ((action, doc),) = parse_bulk(transport.item(stored(record)))
    assert action == {"create": {"_index": "ww", "_id": record.id}}
    assert doc["event"]["id"] == record.id and doc["message"] == visible(record.message)
    assert doc["weightwarden"]["model"] == visible(record.model or "")
    assert record.process is not None
    assert doc["process"]["command_line"] == visible(record.process.command_line or "")
    assert doc["user"]["name"] == visible(record.process.user or "")
    if isinstance(record, Alert):
        assert doc["rule"] == {"id": visible(record.rule_id), "name": visible(record.title or record.rule_id)}
        assert doc["file"]["path"] == visible(record.paths[-1])
    else:
        assert record.file is not None
        assert doc["file"]["path"] == visible(record.file.path)
        assert doc["weightwarden"]["details"] == deep_visible(record.details)


@BOUNDED
@given(records())
def test_ocsf_json_lines_parse_back(record: Record) -> None:
    transport = FileTransport(Renderer("ww-host", "ocsf"), path="/nonexistent/never-opened", max_bytes=1, keep=1)
    doc = parse_json_line(transport.line(stored(record)))
    assert doc["metadata"]["uid"] == record.id and doc["message"] == visible(record.message)
    assert doc["type_uid"] == doc["class_uid"] * 100 + doc["activity_id"]
    assert record.process is not None
    assert doc["actor"]["process"]["cmd_line"] == visible(record.process.command_line or "")
    assert doc["unmapped"]["model"] == visible(record.model or "")
    if isinstance(record, Alert):
        assert doc["finding_info"]["title"] == visible(record.title or record.rule_id)
        assert doc["evidences"][0]["file"]["path"] == visible(record.paths[-1])
    elif record.previous_path is None:
        assert record.file is not None
        assert doc["file"]["path"] == visible(record.file.path)
        assert doc["unmapped"]["details"] == deep_visible(record.details)


@BOUNDED
@given(st.lists(records(), min_size=1, max_size=3))
def test_hec_batches_parse_back(batch: list[Record]) -> None:
    transport = HecTransport(Renderer("ww-host", "native"), url="http://127.0.0.1:9", token="t")
    body = b"".join(transport.envelope(stored(record, n)) for n, record in enumerate(batch, 1))
    items = parse_hec_batch(body)
    assert len(items) == len(batch)
    for n, (item, record) in enumerate(zip(items, batch, strict=True), 1):
        assert item["fields"] == {"weightwarden_id": record.id, "weightwarden_sequence": n,
                                  "weightwarden_kind": record.kind}
        native = record.to_dict() | {"sequence": n}
        assert item["event"] == {"kind": record.kind, "host": "ww-host", **deep_visible(native)}


@BOUNDED
@given(batch=st.lists(records(), min_size=1, max_size=3), body=st.sampled_from(["native", "ecs", "ocsf"]))
def test_json_lines_file_holds_one_line_per_record(batch: list[Record], body: str,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "out.jsonl"
    transport = FileTransport(Renderer("ww-host", body), path=str(path), max_bytes=1 << 30, keep=1)
    try:
        outcome = transport.send([stored(record, n) for n, record in enumerate(batch, 1)])
    finally:
        transport.close()
    data = path.read_bytes()
    assert outcome.dead == [] and outcome.delivered == len(batch)
    lines = data.split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == len(batch)
    assert len(data.decode("utf-8").splitlines()) == len(batch)  # no reader finds a second line in one record
    for line, record in zip(lines[:-1], batch, strict=True):
        doc = parse_json_line(line + b"\n")
        if body == "native":
            assert doc["id"] == record.id and doc["message"] == visible(record.message)


def test_nel_and_line_separators_are_escaped_in_cef_and_leef() -> None:
    """NEL (U+0085) and LINE SEPARATOR (U+2028) in a file name: a line reader must not see a second event."""
    forged = "x.safetensors\x85CEF:0|Weightwarden|Weightwarden Agent|0|model-deleted|forged|0|\u2028y"
    record = Event(Action.MODEL_CREATED, Category.FILE, f"model created: {forged}", file=FileInfo(path=f"/m/{forged}"))
    for body in ("cef", "leef"):
        data = Renderer("ww-host", body).syslog_message(stored(record))
        assert len(data.decode("utf-8").splitlines()) == 1
        _message, _header, values = syslog(record, body)
        assert values["filePath"] == "/m/" + forged.replace("\x85", "\n").replace("\u2028", "\n")


def test_a_stored_time_rewritten_with_a_space_still_gives_an_rfc5424_timestamp() -> None:
    """A row rewritten by hand with a time Python still reads ("2026-01-01 00:00:00+02:00") must not put a
    space into the syslog header (it would shift every field after it) nor into @timestamp."""
    record = stored(Event(Action.MODEL_CREATED, Category.FILE, "m"))
    record.record["time"] = "2026-01-01 00:00:00+02:00"
    message = parse_rfc5424(Renderer("ww-host", "cef").syslog_message(record))
    assert message.timestamp == "2025-12-31T22:00:00.000Z" and message.app_name == "weightwarden"
    assert Renderer("ww-host", "ecs").document(record)["@timestamp"] == "2025-12-31T22:00:00.000Z"
