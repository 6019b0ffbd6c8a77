"""HEC and `_bulk` in an enterprise network, over real HTTP on 127.0.0.x: a forward proxy from the environment,
client certificates, server_name, keep-alive, timeouts (agent/forward/http.py). The receivers are the HEC
stub and osmem-server behind a TLS front, both with certificates made here; the proxy counts what it carried.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.agent.forward.certs import Pki, server_for
from tests.agent.forward.conftest import destination, forwarding, store_records, wait_for
from weightwarden.agent.config import ForwardDestination
from weightwarden.agent.events import Action, Category, Event, Record
from weightwarden.agent.forward.testing.forward_proxy import ForwardProxy
from weightwarden.agent.forward.testing.hec_stub import HecStub
from weightwarden.agent.forward.testing.tls_front import TlsFront
from weightwarden.agent.store.outbox import Outbox

pytest.importorskip("osmem_server", reason="osmem-server is in the test extra")

TOKEN = "0b6e3c1a-1111-2222-3333-444455556666"
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
                   "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy variables it means; the machine's own must not leak in."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def server_context(pki: Pki, directory: Path, *names: str, client_certificates: bool = False) -> ssl.SSLContext:
    cert, key = server_for(pki, directory, *names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_certificates:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context


@dataclass
class Receiver:
    """A running HTTPS receiver of one kind, as the tests below see it."""

    kind: str  # hec or bulk
    port: int
    delivered: Callable[[], set[str]]  # record ids the receiver holds (de-duplicated)
    connections: Callable[[], int]
    server_names: list[str | None]
    refused: list[str]
    values: dict[str, Any] = field(default_factory=dict)  # the destination keys its kind needs

    def destination(self, host: str, **values: Any) -> ForwardDestination:
        return destination("siem", type=self.kind, url=f"https://{host}:{self.port}", **{**self.values, **values})


@contextlib.contextmanager
def receiver(kind: str, context: ssl.SSLContext, osmem: Any, host: str = "127.0.0.1") -> Iterator[Receiver]:
    if kind == "hec":
        with HecStub(TOKEN, tls=context, host=host) as stub:
            yield Receiver("hec", stub.port, lambda: {e["fields"]["weightwarden_id"] for e in stub.deduplicated()},
                           lambda: len(stub.connections), stub.server_names, stub.tls_refused, {"token": TOKEN})
        return
    clone = osmem.clone()
    try:
        with TlsFront(clone.url, context, host=host) as front:
            yield Receiver("bulk", front.port, lambda: set(documents(clone.url)), lambda: front.connections,
                           front.server_names, front.refused)
    finally:
        clone.close()


def documents(url: str, index: str = "weightwarden-events") -> dict[str, Any]:
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", f"/{index}/_refresh")
        conn.getresponse().read()
        conn.request("POST", f"/{index}/_search", body=json.dumps({"query": {"match_all": {}}, "size": 10000}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    if response.status != 200:
        return {}
    return {hit["_id"]: hit["_source"] for hit in answer["hits"]["hits"]}


def events(count: int) -> list[Record]:
    return [Event(Action.MODEL_MODIFIED, Category.FILE, f"event {n}") for n in range(count)]


def cursor(database: Path, name: str = "siem") -> int:
    outbox = Outbox(database)
    try:
        return outbox.cursor(name)
    finally:
        outbox.close()


def deliver(dest: ForwardDestination, database: Path, records: list[Record], receiver: Receiver) -> None:
    stored = store_records(database, records)
    with forwarding(dest, database):
        wait_for(lambda: cursor(database) == stored[-1].sequence, timeout=20, what="every record delivered")
    assert receiver.delivered() == {r.id for r in stored}


def health(dest: ForwardDestination, database: Path, records: list[Record]) -> str:
    """The forward-health message a destination raises; nothing may be delivered meanwhile."""
    store_records(database, records)
    with forwarding(dest, database) as (_forwarder, emitted):
        wait_for(lambda: emitted, timeout=15, what="a forward-health record")
    assert cursor(database) == 0
    return emitted[0].message


KINDS = ["hec", "bulk"]


# ------------------------------------------------------------------------------------------------ proxies


@pytest.mark.parametrize("kind", KINDS)
def test_https_proxy_from_the_environment_carries_every_request(kind: str, pki: Pki, osmem: Any, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver's name only resolves at the proxy (.test, RFC 6761): delivery works only through it. One
    CONNECT tunnel carries every batch (keep-alive through the proxy); TLS and its check stay end to end."""
    name = f"{kind}.siem.example.test"
    context = server_context(pki, tmp_path / "certs", name)
    with receiver(kind, context, osmem) as running, \
            ForwardProxy(hosts={name: "127.0.0.1"}, credentials="agent:s3cret pass") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://agent:s3cret%20pass@"))
        monkeypatch.setenv("NO_PROXY", "localhost,.corp.example.org")
        deliver(running.destination(name, ca_file=str(pki.ca), batch_size=5), tmp_path / "ww.db", events(40),
                running)
        assert proxy.tunnels == [f"{name}:{running.port}"] and proxy.refused == []
        assert running.server_names[-1] == name and running.connections() == 1


@pytest.mark.parametrize(("no_proxy", "host", "through_proxy"), [
    ("", "127.0.0.2", True),  # not in the defaults: proxied, as curl would
    ("127.0.0.2", "127.0.0.2", False),
    ("example.org, 127.0.0.0/8", "127.0.0.2", False),  # CIDR, spaces
    ("*", "127.0.0.2", False),
    ("127.0.0.3,localhost", "127.0.0.2", True),
    ("", "127.0.0.1", False),  # 127.0.0.1 is always direct, as if NO_PROXY held it
    ("example.org", "127.0.0.1", False),  # also when NO_PROXY is set without it
])
@pytest.mark.parametrize("kind", KINDS)
def test_no_proxy_is_honoured_like_curl(kind: str, no_proxy: str, host: str, through_proxy: bool, pki: Pki,
                                        osmem: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = server_context(pki, tmp_path / "certs", host)
    with receiver(kind, context, osmem, host=host) as running, ForwardProxy() as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        if no_proxy:
            monkeypatch.setenv("no_proxy", no_proxy)
        deliver(running.destination(host, ca_file=str(pki.ca)), tmp_path / "ww.db", events(3), running)
        assert proxy.tunnels == ([f"{host}:{running.port}"] if through_proxy else [])


def test_an_https_proxy_carries_tls_inside_tls(pki: Pki, osmem: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY=https://...: TLS to the proxy (its certificate checked against ca_file), the receiver's TLS
    inside the tunnel."""
    name = "hec.siem.example.test"
    with receiver("hec", server_context(pki, tmp_path / "certs", name), osmem) as running, \
            ForwardProxy(hosts={name: "127.0.0.1"}, tls=server_context(pki, tmp_path / "proxy", "127.0.0.1")) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        deliver(running.destination(name, ca_file=str(pki.ca), batch_size=5), tmp_path / "ww.db", events(12),
                running)
        assert proxy.url.startswith("https://") and proxy.tunnels == [f"{name}:{running.port}"]


def test_plain_http_goes_to_the_proxy_in_absolute_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with HecStub(TOKEN, host="127.0.0.2") as stub, ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # for https only: must not be used
        dest = destination("siem", type="hec", url=stub.url, token=TOKEN)
        stored = store_records(tmp_path / "ww.db", events(3))
        with forwarding(dest, tmp_path / "ww.db"):
            wait_for(lambda: cursor(tmp_path / "ww.db") == stored[-1].sequence, timeout=15, what="delivery")
    assert proxy.tunnels == [] and proxy.forwarded[0] == f"{stub.url}/services/collector/event"
    assert {e["fields"]["weightwarden_id"] for e in stub.deduplicated()} == {r.id for r in stored}


def test_a_proxy_refusing_the_credentials_is_a_forward_health_error(pki: Pki, osmem: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    context = server_context(pki, tmp_path / "certs", "127.0.0.2")
    with receiver("hec", context, osmem, host="127.0.0.2") as running, ForwardProxy(credentials="a:b") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://a:wrong@"))
        message = health(running.destination("127.0.0.2", ca_file=str(pki.ca)), tmp_path / "ww.db", events(2))
    assert "407" in message and "HTTPS_PROXY" in message and running.delivered() == set()
    assert "wrong" not in message  # the proxy password never reaches a record


def test_a_socks_proxy_is_refused_not_bypassed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with HecStub(TOKEN, host="127.0.0.2") as stub:
        monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
        message = health(destination("siem", type="hec", url=stub.url, token=TOKEN), tmp_path / "ww.db", events(1))
    assert "ALL_PROXY" in message and "socks5" in message and stub.requests == 0


# ---------------------------------------------------------------------------------------------------- TLS


@pytest.mark.parametrize("kind", KINDS)
def test_mutual_tls_presents_the_client_certificate_the_receiver_requires(kind: str, pki: Pki, osmem: Any,
                                                                          tmp_path: Path) -> None:
    context = server_context(pki, tmp_path / "certs", "127.0.0.1", client_certificates=True)
    with receiver(kind, context, osmem) as running:
        without = health(running.destination("127.0.0.1", ca_file=str(pki.ca)), tmp_path / "a.db", events(2))
        assert "refused the TLS handshake" in without and "client_cert" in without, without
        assert running.refused and running.delivered() == set()
        deliver(running.destination("127.0.0.1", ca_file=str(pki.ca), client_cert=str(pki.client_cert),
                                    client_key=str(pki.client_key)), tmp_path / "b.db", events(5), running)


@pytest.mark.parametrize("kind", KINDS)
def test_server_name_is_sent_and_checked(kind: str, pki: Pki, osmem: Any, tmp_path: Path) -> None:
    """The receiver is reached by address; its certificate names only siem.internal.test."""
    context = server_context(pki, tmp_path / "certs", "siem.internal.test")
    with receiver(kind, context, osmem) as running:
        by_address = health(running.destination("127.0.0.1", ca_file=str(pki.ca)), tmp_path / "a.db", events(1))
        assert "TLS certificate of https://127.0.0.1" in by_address and "mismatch" in by_address, by_address
        other = health(running.destination("127.0.0.1", ca_file=str(pki.ca), server_name="other.internal.test"),
                       tmp_path / "b.db", events(1))
        assert "server_name 'other.internal.test'" in other and "not valid for 'other.internal.test'" in other, other
        assert running.server_names[-1] == "other.internal.test" and running.delivered() == set()
        deliver(running.destination("127.0.0.1", ca_file=str(pki.ca), server_name="siem.internal.test"),
                tmp_path / "c.db", events(3), running)
        assert running.server_names[-1] == "siem.internal.test"


@pytest.mark.parametrize("kind", KINDS)
def test_the_ca_bundle_setting_decides_trust(kind: str, pki: Pki, osmem: Any, tmp_path: Path) -> None:
    context = server_context(pki, tmp_path / "certs", "127.0.0.1")
    with receiver(kind, context, osmem) as running:
        message = health(running.destination("127.0.0.1", ca_file=str(pki.other_ca)), tmp_path / "a.db", events(1))
        assert "TLS certificate of https://127.0.0.1" in message and "unable to get local issuer" in message, message
        deliver(running.destination("127.0.0.1", ca_file=str(pki.ca)), tmp_path / "b.db", events(2), running)


def test_unusable_tls_files_are_config_errors_with_file_and_line(pki: Pki, tmp_path: Path) -> None:
    from weightwarden.agent.config import check_config, load_config
    from weightwarden.agent.forward.destinations import build_transport
    from weightwarden.agent.forward.transport import TransportError

    encrypted = tmp_path / "encrypted.key"
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), password=None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"pass")))
    config = tmp_path / "c.toml"
    config.write_text(f"""[forward.splunk]
type = "hec"
url = "https://127.0.0.1:8088"
token = "t"
client_cert = "{tmp_path}/missing.pem"

[forward.elastic]
type = "bulk"
url = "https://127.0.0.1:9200"
client_cert = "{pki.client_cert}"
client_key = "{encrypted}"
ca_file = "{pki.client_key}"
""")
    problems = [str(p) for p in check_config(config)]
    assert problems == [
        f"{config}:5: [forward.splunk] client_cert: cannot read {tmp_path}/missing.pem: No such file or directory",
        f"{config}:12: [forward.elastic] ca_file: {pki.client_key} holds no PEM certificate",
        f"{config}:11: [forward.elastic] client_key: {encrypted}: the private key is encrypted; give an unencrypted "
        "key file readable by the agent only"], problems
    loaded = load_config(config)  # loading alone does not read them: other users' tools must still load it
    with pytest.raises(TransportError) as caught:
        build_transport(loaded.forward[0], "host")
    assert caught.value.config and str(caught.value).startswith(f"{config}:5: client_cert: cannot read")


# -------------------------------------------------------------------------------------- keep-alive, timeouts


def test_hec_requests_share_one_connection(tmp_path: Path) -> None:
    with HecStub(TOKEN) as stub:
        dest = destination("siem", type="hec", url=stub.url, token=TOKEN, batch_size=10)
        stored = store_records(tmp_path / "ww.db", events(200))
        with forwarding(dest, tmp_path / "ww.db"):
            wait_for(lambda: cursor(tmp_path / "ww.db") == stored[-1].sequence, timeout=20, what="delivery")
    # 20 batches, each an event request and at least one ack query: all on the first connection
    assert len(stub.connections) == 1 and stub.connections[0] >= 40, stub.connections


def test_bulk_requests_share_one_connection(pki: Pki, osmem: Any, tmp_path: Path) -> None:
    context = server_context(pki, tmp_path / "certs", "127.0.0.1")
    with receiver("bulk", context, osmem) as running:
        deliver(running.destination("127.0.0.1", ca_file=str(pki.ca), batch_size=10), tmp_path / "ww.db",
                events(150), running)
        assert running.connections() == 1  # 15 _bulk requests (and their TLS) over one connection


def test_a_receiver_that_never_answers_times_out(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])  # read nothing, answer nothing

    threading.Thread(target=accept, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        dest = destination("siem", type="bulk", url=f"http://127.0.0.1:{port}", timeout_seconds=0.5)
        store_records(tmp_path / "ww.db", events(1))
        with forwarding(dest, tmp_path / "ww.db") as (forwarder, _emitted):
            wait_for(lambda: forwarder.errors >= 2, timeout=10, what="two timed-out attempts")
            assert "timed out" in (forwarder.last_error or ""), forwarder.last_error
        assert cursor(tmp_path / "ww.db") == 0
    finally:
        listener.close()
        for sock in held:
            sock.close()
