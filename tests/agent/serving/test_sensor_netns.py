"""A model server inside another network namespace (a container's, here one the test makes): found through
a sock_diag socket created in that namespace, probed on that namespace's own loopback, its reach the
container bridge, and a peer reaching it through the veth pair counted there."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.serving.servers import ask, start_server, stop, watching
from tests.conftest import write_safetensors
from tests.waiting import wait_for
from weightwarden.agent.events import ModelFile
from weightwarden.agent.serving.observations import PeerTraffic, ServingStarted
from weightwarden.agent.serving.testing import PeerNetwork, peer_network

pytestmark = [pytest.mark.root]


@pytest.fixture
def network() -> Iterator[PeerNetwork]:
    if os.geteuid() != 0 or shutil.which("ip") is None or not sys.platform.startswith("linux"):
        pytest.skip("network namespaces need root and iproute2")
    with peer_network([2]) as made:
        yield made


def test_a_server_in_another_namespace(network: PeerNetwork, tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "boxed" / "model.safetensors", seed=12)
    st = os.stat(path)
    model = ModelFile(str(path), "safetensors", st.st_size, "boxed", device=st.st_dev, inode=st.st_ino)
    seen: list[object] = []
    sensor = watching(model, seen)
    process, port = start_server(path, "0.0.0.0", run_as=("ip", "netns", "exec", network.namespace))
    sensor.start()
    try:
        started = wait_for(lambda: next((o for o in seen if isinstance(o, ServingStarted)
                                         and o.server.port == port), None), timeout=30, what="the boxed server")
        server = started.server
        assert server.netns == os.stat(f"/proc/{process.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        assert (server.reach, server.protocol, server.authenticated) == ("container-bridge", "ollama", False)
        ask(network.address(2), port, 25)  # from this namespace, through the veth pair

        def counted() -> PeerTraffic | None:
            found = [o for o in seen if isinstance(o, PeerTraffic) and o.peer == network.host]
            return found[-1] if found and found[-1].connections >= 25 and found[-1].open == 0 else None

        traffic = wait_for(counted, timeout=30, what="the host's connections counted in the namespace")
        assert traffic.bytes_sent > 0 and traffic.bytes_received > 0
    finally:
        sensor.stop()
        stop(process)
