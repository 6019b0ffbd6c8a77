"""Real syslog receivers, started by the tests on 127.0.0.1: rsyslog (gtls) and syslog-ng (tls).

Each writes one JSON object per received message: the raw message as it came off the wire plus the fields
the receiver itself parsed (host, app, msgid, structured data, msg), so a test can check both our framing
and that a real parser reads our headers as we meant them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.agent.forward.certs import Pki

_PRIVATE_RSYSLOG = Path(sys.prefix) / "opt" / "rsyslog"  # installer/dev.sh unpacks it here (see there why)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rsyslogd() -> tuple[str, str | None] | None:
    """(binary, module dir or None) of rsyslog, installed or unpacked privately; None when absent."""
    private = _PRIVATE_RSYSLOG / "usr" / "sbin" / "rsyslogd"
    if private.exists():
        modules = next((_PRIVATE_RSYSLOG / "usr" / "lib").glob("*/rsyslog"), None)
        return str(private), str(modules) if modules else None
    found = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
    if found and os.path.exists(os.path.join(os.path.dirname(found), "..", "lib")):
        return found, None
    return None


def syslog_ng() -> str | None:
    return shutil.which("syslog-ng") or ("/usr/sbin/syslog-ng" if os.path.exists("/usr/sbin/syslog-ng") else None)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Receiver:
    """A receiver process with start/stop/kill and the messages it wrote so far."""

    name = "receiver"

    def __init__(self, workdir: Path, pki: Pki, *, port: int | None = None, client_auth: bool = False) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.port = port or free_port()
        self.client_auth = client_auth
        self.output = self.dir / "out.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "receiver.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 20.0) -> Receiver:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} did not listen on {self.port} within {timeout}s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def messages(self) -> list[dict[str, Any]]:
        if not self.output.exists():
            return []
        lines = self.output.read_bytes().split(b"\n")
        return [json.loads(line) for line in lines[:-1] if line.strip()]  # the last one may be half written


class Rsyslog(Receiver):
    name = "rsyslog"

    def command(self) -> list[str]:
        binary, modules = rsyslogd() or ("rsyslogd", None)
        conf = self.dir / "rsyslog.conf"
        auth = 'StreamDriver.Authmode="x509/certvalid" StreamDriver.PermittedPeers=["weightwarden-agent"]' \
            if self.client_auth else 'StreamDriver.Authmode="anon"'
        conf.write_text(f"""
global(workDirectory="{self.dir}" maxMessageSize="64k" parser.escapeControlCharacterTab="off"
       DefaultNetstreamDriverCAFile="{self.pki.ca}"
       DefaultNetstreamDriverCertFile="{self.pki.server_cert}"
       DefaultNetstreamDriverKeyFile="{self.pki.server_key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" {auth})
input(type="imtcp" port="{self.port}" address="127.0.0.1")
template(name="ww" type="list" option.jsonf="on") {{
  property(outname="raw" name="rawmsg" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
action(type="omfile" file="{self.output}" template="ww" flushOnTXEnd="on" asyncWriting="off")
""")
        command = [binary, "-n", "-f", str(conf), "-i", str(self.dir / "rsyslog.pid")]
        return command + (["-M", modules] if modules else [])


class SyslogNg(Receiver):
    name = "syslog-ng"

    def command(self) -> list[str]:
        conf = self.dir / "syslog-ng.conf"
        verify = f'peer-verify(required-trusted) ca-file("{self.pki.ca}")' if self.client_auth \
            else "peer-verify(optional-untrusted)"
        conf.write_text(f"""@version: 3.38
options {{ stats-freq(0); keep-hostname(yes); log-msg-size(65536); }};
source s_tls {{
  syslog(ip("127.0.0.1") port({self.port}) transport("tls") flags(store-raw-message)
         tls(key-file("{self.pki.server_key}") cert-file("{self.pki.server_cert}") {verify}));
}};
destination d_json {{
  file("{self.output}" template("$(format-json --scope rfc5424 --scope nv-pairs --key RAWMSG)\\n")
       flush-lines(1));
}};
log {{ source(s_tls); destination(d_json); }};
""")
        return [syslog_ng() or "syslog-ng", "-F", "-f", str(conf), "-R", str(self.dir / "persist"),
                "-p", str(self.dir / "syslog-ng.pid"), "-c", str(self.dir / "syslog-ng.ctl"), "--no-caps"]

    def messages(self) -> list[dict[str, Any]]:
        found = []
        for message in super().messages():  # normalise to the rsyslog names
            sdata = message.get("_SDATA") or {}  # format-json nests .SDATA.ID.PARAM
            sd = next((params for sd_id, params in sdata.items() if sd_id.startswith("weightwarden@")), {})
            found.append({"raw": message.get("RAWMSG", ""), "host": message.get("HOST"),
                          "app": message.get("PROGRAM"), "procid": message.get("PID"),
                          "msgid": message.get("MSGID"), "sd_params": sd, "msg": message.get("MESSAGE")})
        return found
