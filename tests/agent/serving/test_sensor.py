"""The serving sensor against a real model server (a child process holding a real safetensors model):
found with its reach, protocol and authentication, and each peer counted from the kernel's counters."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.serving.servers import ask, start_server, stop, watching
from tests.conftest import write_safetensors
from tests.waiting import wait_for
from weightwarden.agent.events import ModelFile
from weightwarden.agent.serving.observations import PeerTraffic, ServingStarted, ServingStopped
from weightwarden.agent.serving.section import servers_in, serving_lines
from weightwarden.agent.serving.sensor import ServingSensor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sock_diag is Linux only")


@pytest.fixture
def model(tmp_path: Path) -> ModelFile:
    path = write_safetensors(tmp_path / "llama-private" / "model.safetensors", seed=5, rows=128)
    st = os.stat(path)
    return ModelFile(str(path), "safetensors", st.st_size, "llama-private", device=st.st_dev, inode=st.st_ino)


@pytest.fixture
def sensor(model: ModelFile) -> Iterator[tuple[ServingSensor, list[object]]]:
    seen: list[object] = []
    found = watching(model, seen)
    found.start()
    yield found, seen
    found.stop()


def _started(seen: list[object], port: int) -> ServingStarted | None:
    return next((o for o in seen if isinstance(o, ServingStarted) and o.server.port == port), None)


def test_a_server_on_all_interfaces_is_found_with_its_protocol_and_peers(
        model: ModelFile, sensor: tuple[ServingSensor, list[object]]) -> None:
    found, seen = sensor
    process, port = start_server(Path(model.path), "0.0.0.0")
    try:
        started = wait_for(lambda: _started(seen, port), timeout=30, what="the server found")
        server = started.server
        assert (server.reach, server.protocol, server.authenticated) == ("all-interfaces", "ollama", False)
        assert server.pid == process.pid and [m.model for m in server.models] == ["llama-private"]
        answered = ask("127.0.0.1", port, 60)

        def counted() -> PeerTraffic | None:
            last = [o for o in seen if isinstance(o, PeerTraffic) and o.peer == "127.0.0.1"]
            # 60 asked + the probe's own requests, all closed with their final counts
            return last[-1] if last and last[-1].connections >= 60 and last[-1].open == 0 else None

        traffic = wait_for(counted, timeout=30, what="60 connections of 127.0.0.1 counted")
        assert traffic.bytes_sent >= answered  # answers with their HTTP headers, from tcp_info
        assert traffic.bytes_received > 60 * 100
        (row,) = servers_in({"serving": found.snapshot()})  # what `status`, `models` and the app read
        assert (row.port, row.models, row.exposed, row.peers[0].peer) == (port, ("llama-private",), True, "127.0.0.1")
        text = "\n".join(serving_lines([row]))
        assert f"on 0.0.0.0:{port}; reach all-interfaces; ollama; NO authentication  <- EXPOSED" in text
    finally:
        stop(process)
    wait_for(lambda: any(isinstance(o, ServingStopped) and o.server.port == port for o in seen), timeout=30,
             what="the server gone")


def test_a_server_that_asks_for_credentials_on_loopback(model: ModelFile,
                                                        sensor: tuple[ServingSensor, list[object]]) -> None:
    _, seen = sensor
    process, port = start_server(Path(model.path), "127.0.0.1", token="s3cret")
    try:
        server = wait_for(lambda: _started(seen, port), timeout=30, what="the server found").server
        assert (server.reach, server.authenticated, server.exposed) == ("loopback", True, False)
    finally:
        stop(process)


def test_a_listener_without_a_protected_model_is_not_a_server(tmp_path: Path,
                                                              sensor: tuple[ServingSensor, list[object]]) -> None:
    _, seen = sensor
    other = write_safetensors(tmp_path / "other" / "model.safetensors", seed=9)
    process, port = start_server(other, "0.0.0.0")
    try:
        ask("127.0.0.1", port, 3)
        found, _ = sensor
        wait_for(lambda: found.counters.events >= 0 and port in _listening_ports(), timeout=10, what="listening")
        assert _started(seen, port) is None
    finally:
        stop(process)


def _listening_ports() -> set[int]:
    from weightwarden.agent.sensors import sockdiag
    sock = sockdiag.diag_socket()
    try:
        return sockdiag.listening_ports(sock)
    finally:
        sock.close()


def test_what_peers_asked_since_their_last_report_is_reported_when_the_server_stops(model: ModelFile) -> None:
    seen: list[object] = []
    found = watching(model, seen, report_seconds=600)
    found.start()
    try:
        process, port = start_server(Path(model.path), "127.0.0.1")
        try:
            wait_for(lambda: _started(seen, port), timeout=30, what="the server found")
            assert found.followed_namespaces() == {os.stat("/proc/self/ns/net").st_ino}
            ask("127.0.0.1", port, 1)
            wait_for(lambda: [o for o in seen if isinstance(o, PeerTraffic)], timeout=30, what="a first report")
            ask("127.0.0.1", port, 40)  # within report_seconds of the first report: held back
        finally:
            stop(process)
        wait_for(lambda: any(isinstance(o, ServingStopped) for o in seen), timeout=30, what="the server gone")
        wait_for(lambda: not found.followed_namespaces(), timeout=10, what="its namespace's notices left")
        last = [o for o in seen if isinstance(o, PeerTraffic)][-1]
        assert last.connections >= 41 and seen.index(last) < next(
            i for i, o in enumerate(seen) if isinstance(o, ServingStopped))
    finally:
        found.stop()
