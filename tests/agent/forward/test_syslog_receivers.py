"""RFC 5425 syslog over TLS into real rsyslog (gtls) and syslog-ng (tls), started here on 127.0.0.1.

What the receivers wrote is parsed with independent parsers (tests/agent/forward/parsers.py) and every
field is compared with the stored record, hostile values included.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.forward.certs import Pki
from tests.agent.forward.conftest import destination, forwarding, hostile_records, store_records, wait_for
from tests.agent.forward.parsers import parse_5424, parse_cef, parse_leef
from tests.agent.forward.receivers import Receiver, Rsyslog, SyslogNg, rsyslogd, syslog_ng
from weightwarden.agent import __version__
from weightwarden.agent.events import Alert, Record, format_time
from weightwarden.agent.forward.render import Renderer
from weightwarden.agent.forward.syslog_transport import SyslogTransport
from weightwarden.agent.forward.transport import TransportError
from weightwarden.agent.store.outbox import OutboxRecord

RECEIVERS = {
    "rsyslog": pytest.param(Rsyslog, marks=pytest.mark.skipif(rsyslogd() is None, reason="rsyslog not installed "
                                                               "(installer/dev.sh installs it)")),
    "syslog-ng": pytest.param(SyslogNg, marks=pytest.mark.skipif(syslog_ng() is None, reason="syslog-ng not "
                                                                 "installed (installer/dev.sh installs it)")),
}


@pytest.fixture(params=list(RECEIVERS.values()), ids=list(RECEIVERS))
def receiver(request: pytest.FixtureRequest, tmp_path: Path, pki: Pki) -> Iterator[Receiver]:
    running = request.param(tmp_path / "receiver", pki).start()
    try:
        yield running
    finally:
        running.kill()


def tls_destination(receiver: Receiver, pki: Pki, **values: Any) -> Any:
    return destination("siem", type="syslog", address="127.0.0.1", port=receiver.port, transport="tls",
                       ca_file=str(pki.ca), resend_window_seconds=0.2, **values)


def spaced(text: str, keep: str = "") -> str:
    """Control characters without an escape in the format become spaces (documented in cef.py, syslog.py)."""
    return "".join(" " if (ord(ch) < 0x20 or ord(ch) == 0x7F) and ch not in keep else ch for ch in text)


def _by_id(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {parse_5424(m["raw"]).sd["weightwarden@32473"]["id"]: m for m in messages}


def test_cef_over_tls_round_trips_every_field(receiver: Receiver, pki: Pki, tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    stored = store_records(database, hostile_records())
    with forwarding(tls_destination(receiver, pki), database) as (_forwarder, emitted):
        got = wait_for(lambda: len(receiver.messages()) >= len(stored) and receiver.messages(), timeout=20,
                       what=f"{len(stored)} messages in {receiver.name}")
    by_id = _by_id(got)
    assert set(by_id) == {r.id for r in stored} and emitted == []
    for record in stored:
        check_message(by_id[record.id], record)


def check_message(message: dict[str, Any], record: Record) -> None:
    raw = message["raw"]
    assert len(raw.encode()) <= 8000
    parsed = parse_5424(raw)
    data = record.to_dict()
    assert parsed.timestamp == data["time"] == format_time(record.time)
    assert (parsed.host, parsed.app, parsed.procid) == ("ww-test-host", "weightwarden", str(os.getpid()))
    sd = parsed.sd["weightwarden@32473"]
    assert sd["id"] == record.id and sd["seq"] == str(record.sequence) and sd["kind"] == record.kind
    assert sd.get("model") == (spaced(record.model[:256]) if record.model else None)
    # What the receiver itself parsed agrees with us.
    assert message["host"] == "ww-test-host" and message["app"] == "weightwarden"
    assert message["msgid"] == parsed.msgid
    if "sd_params" in message:  # syslog-ng unescapes SD itself
        assert message["sd_params"] == sd
    header, ext = parse_cef(parsed.msg)
    assert header[1:4] == ["Weightwarden", "Weightwarden Agent", __version__]
    assert ext["externalId"] == record.id and ext["cn1"] == str(record.sequence) and ext["cn1Label"] == "sequence"
    assert int(ext["rt"]) == int(record.time.timestamp() * 1000)
    assert ext["dvchost"] == "ww-test-host"
    process = data.get("process") or {}
    if process:
        assert ext["sproc"] == process["name"] and ext["spid"] == str(process["pid"])
        assert ext["suser"] == process["user"] and ext["cs3"] == spaced(process["command_line"], "\r\n")
        assert ext["cs6"] == process["executable"] and ext["cs3Label"] == "commandLine"
    if isinstance(record, Alert):
        assert header[4] == record.rule_id and header[5] == spaced(record.title)
        assert header[6] == str(record.severity) and parsed.msgid == record.rule_id
        assert ext["msg"] == spaced(record.message, "\r\n")
        assert ext["filePath"] == spaced(record.paths[-1], "\r\n")
        assert ext["oldFilePath"] == spaced(record.paths[0], "\r\n")
        assert ext["cs2"] == record.model and ext["dst"] == "10.0.0.5" and ext["dpt"] == "22"
        assert ext["cs4"] == "removable" and ext["cs5"] == "/media/usb"
        return
    assert header[4] == str(record.action) and header[6] == str(record.severity)
    if len(record.message) < 1000:
        assert ext["msg"] == spaced(record.message, "\r\n")
        assert header[5] == spaced(record.message)
    else:  # cut to fit 8 KiB, visibly
        assert ext["msg"].endswith("…") and record.message.startswith(ext["msg"][:-1])
    if record.file is not None:
        assert ext["filePath"] == spaced(record.file.path, "\r\n")
        assert ext["fname"] == spaced(record.file.path.rsplit("/", 1)[-1], "\r\n")
        if record.file.sha256:
            assert ext["fileHash"] == record.file.sha256 and ext["cs1"] == "sha256"
            assert ext["fsize"] == str(record.file.size) and ext["fileType"] == "safetensors"
    if record.previous_path:
        assert ext["oldFilePath"] == record.previous_path
    if record.model:
        assert ext["cs2"] == spaced(record.model, "\r\n") and ext["cs2Label"] == "model"


@pytest.mark.skipif(rsyslogd() is None, reason="rsyslog not installed")
def test_leef_over_tls_round_trips(tmp_path: Path, pki: Pki) -> None:
    receiver = Rsyslog(tmp_path / "rsyslog", pki).start()
    try:
        database = tmp_path / "ww.db"
        stored = store_records(database, hostile_records()[:3])
        with forwarding(tls_destination(receiver, pki, format="leef"), database):
            got = wait_for(lambda: len(receiver.messages()) >= 3 and receiver.messages(), timeout=20,
                           what="3 LEEF messages")
    finally:
        receiver.kill()
    by_id = _by_id(got)
    for record in stored:
        header, attrs = parse_leef(parse_5424(by_id[record.id]["raw"]).msg)
        assert header[1:3] == ["Weightwarden", "Weightwarden Agent"]
        assert attrs["externalId"] == record.id and attrs["sequence"] == str(record.sequence)
        assert attrs["devTime"] == record.to_dict()["time"] and attrs["devTimeFormat"].endswith("X")
        assert attrs["msg"] == spaced(record.message, "\t\r\n")
        if record.process is not None:
            assert attrs["procName"] == record.process.name and attrs["usrName"] == record.process.user
            assert attrs["procCmdLine"] == spaced(record.process.command_line or "", "\t\r\n")
        path = record.paths[-1] if isinstance(record, Alert) else record.file.path if record.file else None
        assert attrs.get("filePath") == (spaced(path, "\t\r\n") if path else None)


@pytest.mark.parametrize("receiver_class", list(RECEIVERS.values()), ids=list(RECEIVERS))
def test_client_certificate_is_presented_and_required(receiver_class: type[Receiver], tmp_path: Path,
                                                       pki: Pki) -> None:
    receiver = receiver_class(tmp_path / "receiver", pki, client_auth=True).start()
    try:
        record = OutboxRecord(0, "event", "0190a1b2-0000-7000-8000-000000000001",
                              hostile_records()[0].to_dict() | {"id": "0190a1b2-0000-7000-8000-000000000001"})
        with_cert = SyslogTransport(Renderer("ww-test-host", "cef"), address="127.0.0.1", port=receiver.port,
                                    ca_file=str(pki.ca), client_cert=str(pki.client_cert),
                                    client_key=str(pki.client_key), resend_window=0.1, timeout=5)
        import time

        with_cert.send_and_confirm([record], time.monotonic() + 10)
        with_cert.close()
        wait_for(lambda: receiver.messages(), timeout=10, what="the message sent with a client certificate")
        without = SyslogTransport(Renderer("ww-test-host", "cef"), address="127.0.0.1", port=receiver.port,
                                  ca_file=str(pki.ca), resend_window=0.1, timeout=5)
        with pytest.raises(TransportError):
            without.send_and_confirm([record], time.monotonic() + 5)
        without.close()
        assert len(receiver.messages()) == 1
    finally:
        receiver.kill()


def test_untrusted_server_certificate_is_refused_and_reported(receiver: Receiver, pki: Pki, tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    store_records(database, hostile_records()[:1])
    dest = destination("siem", type="syslog", address="127.0.0.1", port=receiver.port, ca_file=str(pki.other_ca))
    with forwarding(dest, database) as (_forwarder, emitted):
        wait_for(lambda: emitted, timeout=10, what="a forward-health record")
    assert "certificate" in emitted[0].message and emitted[0].details["status"] == "failing"  # type: ignore[union-attr]
    assert receiver.messages() == []
