"""`weightwarden enroll`: writes [forward.NAME], makes the key pair, sends a live test event, prints the key."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from tests.agent.forward.certs import make_pki
from weightwarden.agent.cli.enroll_cmd import destination_table, with_destination
from weightwarden.agent.cli.main import main
from weightwarden.agent.cli.output import UsageError
from weightwarden.agent.config import load_config
from weightwarden.agent.forward.testing.hec_stub import HecStub

TOKEN = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir()
    path.write_text('# the admin\'s own notes stay\n[agent]\nname = "gpu-box-7"\n')
    monkeypatch.setenv("WEIGHTWARDEN_DATA_DIR", str(tmp_path / "data"))
    return path


def enroll(config: Path, *args: str) -> int:
    return main(["enroll", "--config", str(config), "--mode", "user", *args])


def test_enroll_to_hec_delivers_a_test_event_and_prints_the_key(config_file: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    with HecStub(TOKEN) as hec:
        assert enroll(config_file, "--siem", f"hec+{hec.url}", "--token", TOKEN) == 0
        assert len(hec.events) == 1
    out = capsys.readouterr().out
    config = load_config(config_file)
    (destination,) = config.forward
    assert (destination.name, destination.type, destination.url) == ("siem", "hec", hec.url)
    token_file = Path(destination.token_file)
    assert token_file.read_text().strip() == TOKEN
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert TOKEN not in config_file.read_text()  # the config is readable by admins; the token is not
    assert config_file.read_text().startswith("# the admin's own notes stay\n[agent]\nname = \"gpu-box-7\"\n")
    assert "agent name: gpu-box-7" in out
    key_id = next(line for line in out.splitlines() if line.startswith("agent key id: ")).split(": ")[1]
    assert len(key_id) == 16
    public = (config_file.parent.parent / "data" / "agent_key.pub.pem").read_text()
    assert public in out


def test_enroll_again_replaces_the_destination_and_keeps_the_key(config_file: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    events = config_file.parent / "events.jsonl"
    assert enroll(config_file, "--siem", f"file://{events}") == 0
    first = capsys.readouterr().out
    assert enroll(config_file, "--siem", f"file://{events}", "--format", "ocsf") == 0
    second = capsys.readouterr().out
    parsed = tomllib.loads(config_file.read_text())
    assert list(parsed["forward"]) == ["siem"] and parsed["forward"]["siem"]["format"] == "ocsf"
    assert len(events.read_text().splitlines()) == 2  # one test event per enrolment
    key_line = [line for line in first.splitlines() if line.startswith("agent key id")]
    assert key_line == [line for line in second.splitlines() if line.startswith("agent key id")]


def test_a_failing_test_event_keeps_the_destination_and_exits_1(config_file: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    with HecStub(TOKEN) as hec:
        assert enroll(config_file, "--siem", f"hec+{hec.url}", "--token", "wrong-token") == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out or "REFUSED" in captured.out
    assert "weightwarden sync test siem" in captured.err
    assert load_config(config_file).forward[0].type == "hec"


def test_ca_file_is_copied_beside_the_config(config_file: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")  # no certificate: the config check refuses it
    assert enroll(config_file, "--siem", "syslog://siem.example.org", "--ca", str(ca), "--no-test") == 2
    assert "holds no PEM certificate" in capsys.readouterr().err
    ca = make_pki(tmp_path / "pki").ca
    assert enroll(config_file, "--siem", "syslog://siem.example.org", "--ca", str(ca), "--no-test") == 0
    (destination,) = load_config(config_file).forward
    assert (destination.type, destination.transport, destination.address) == ("syslog", "tls", "siem.example.org")
    assert destination.ca_file == str(config_file.parent / "siem-ca.pem")
    assert Path(destination.ca_file).read_text() == ca.read_text()


@pytest.mark.parametrize(("url", "token", "expected"), [
    ("syslog://s.example.org", None, {"type": "syslog", "transport": "tls", "address": "s.example.org"}),
    ("syslog+tcp://s.example.org:1514", None,
     {"type": "syslog", "transport": "tcp", "address": "s.example.org", "port": 1514}),
    ("syslog+udp://10.0.0.5", None, {"type": "syslog", "transport": "udp", "address": "10.0.0.5"}),
    ("bulk+https://es.example.org:9200", "key", {"type": "bulk", "url": "https://es.example.org:9200",
                                                 "api_key": "key"}),
    ("https://splunk.example.org:8088", "t", {"type": "hec", "url": "https://splunk.example.org:8088",
                                              "token": "t"}),
    ("file:///var/log/ww.jsonl", None, {"type": "file", "path": "/var/log/ww.jsonl"}),
])
def test_siem_urls(url: str, token: str | None, expected: dict[str, object]) -> None:
    assert destination_table(url, token, None, None) == expected


@pytest.mark.parametrize(("url", "token", "ca"), [
    ("ftp://x", None, None), ("https://splunk:8088", None, None), ("hec+https://splunk:8088", None, None),
    ("syslog://s", "t", None), ("syslog+tcp://s:1514", None, "/ca.pem"), ("file://relative", None, None),
    ("syslog://", None, None),
])
def test_unusable_urls_are_usage_errors(url: str, token: str | None, ca: str | None) -> None:
    with pytest.raises(UsageError):
        destination_table(url, token, ca, None)


def test_usage_errors_exit_2_and_leave_the_config_alone(config_file: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = config_file.read_text()
    assert enroll(config_file, "--siem", "ftp://nowhere") == 2
    assert enroll(config_file, "--siem", "syslog://s", "--name", "bad name") == 2
    assert enroll(config_file, "--siem", "syslog://s", "--ca", "/no/such/ca.pem") == 2
    assert config_file.read_text() == before
    assert "Traceback" not in capsys.readouterr().err


def test_with_destination_replaces_only_its_own_table() -> None:
    text = '[agent]\nname = "a"\n\n[forward.siem]\ntype = "file"\npath = "/old"\n\n[forward.other]\ntype = "file"\n'
    updated = with_destination(text, "siem", {"type": "file", "path": "/new"})
    parsed = tomllib.loads(updated)
    assert parsed["forward"]["siem"]["path"] == "/new"
    assert parsed["forward"]["other"] == {"type": "file"}
    assert parsed["agent"] == {"name": "a"}


def test_the_config_keeps_its_mode(config_file: Path) -> None:
    os.chmod(config_file, 0o640)
    assert enroll(config_file, "--siem", "syslog://s.example.org", "--no-test") == 0
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o640
