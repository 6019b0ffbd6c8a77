"""Acceptance (issue 20): a protected model served on the workstation, as the installed service sees it.

The agent runs as the unit runs it (root, no config file: `InstalledAgent`). An ordinary user starts a real
small model server (agent/serving/testing.py: it loads their safetensors model with the safetensors library
and speaks the Ollama and OpenAI-compatible APIs) bound to every address; remote peers are a network
namespace the test creates, joined to the host by a veth pair, with addresses the test picks from the
benchmarking range 198.18.0.0/15 (RFC 2544). Nothing tells the agent where the model, the server or the
peers are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.serving.servers import ask, stop
from tests.agent.test_installed_scope import InstalledAgent, Person, owned_model, people  # noqa: F401 - fixture
from tests.waiting import wait_for
from weightwarden.agent.serving.testing import peer_network

pytestmark = [pytest.mark.e2e, pytest.mark.root]

BURST = 3000  # requests, each on its own connection: the default burst rule is 1000 within 60 s
EXPOSURE_RULES = ("model-served-to-all-interfaces", "model-served-on-lan-address", "model-served-on-container-bridge")


@dataclass(frozen=True)
class Peers:
    namespace: str
    host: str  # the host's end of the veth
    remote: str  # a peer in the namespace
    trusted: str  # another peer there, in the allowlisted half of the network
    trusted_network: str

    def ask(self, port: int, count: int, source: str) -> int:
        """`count` requests from `source` inside the namespace to the server on the host's veth address."""
        result = subprocess.run(["ip", "netns", "exec", self.namespace, sys.executable, "-m",
                                 "tests.agent.serving.servers", self.host, str(port), str(count), source],
                                capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[3])
        assert result.returncode == 0, result.stderr
        return int(result.stdout)


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    with peer_network([2, 130]) as network:
        yield Peers(network.namespace, network.host, network.address(2), network.address(130),
                    f"{network.prefix}.128/25")


def _service(users: tuple[Person, Person], tmp: Path, config: str | None) -> tuple[InstalledAgent, Path]:
    _, bo = users
    model = owned_model(bo, f"models/llama-private-{tmp.name}/model.safetensors", seed=len(tmp.name))
    path = None
    if config is not None:
        path = tmp / "config.toml"
        path.write_text(config)
    agent = InstalledAgent(tmp / "data", path)
    wait_for(lambda: any(str(model) in m.get("paths", []) for m in agent.models()), timeout=180,
             what="bo's model in the inventory of the service")
    return agent, model


@pytest.fixture(scope="module")
def service(people: tuple[Person, Person], tmp_path_factory: pytest.TempPathFactory  # noqa: F811
            ) -> Iterator[tuple[InstalledAgent, Path]]:
    agent, model = _service(people, tmp_path_factory.mktemp("serving"), None)  # the default config
    try:
        yield agent, model
    finally:
        assert agent.stop() == 0


def start_as(person: Person, model: Path, host: str) -> tuple[subprocess.Popen[bytes], int]:
    """The model server, run by `person` (not root), once it listens; its port."""
    process = person.start(sys.executable, "-m", "weightwarden.agent.serving.testing", str(model), "--host", host,
                           "--name", model.parent.name)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip().isdigit(), (line, process.stderr.read() if process.stderr else b"")
    return process, int(line)


def alerts(agent: InstalledAgent, rule: str | tuple[str, ...]) -> list[dict[str, Any]]:
    rules = (rule,) if isinstance(rule, str) else rule
    return [a for a in agent.json_lines("alerts") if a["rule"] in rules]


def served(agent: InstalledAgent, port: int) -> dict[str, Any] | None:
    (status,) = agent.json_lines("status") or [{}]
    return next((s for s in (status.get("serving") or {}).get("servers", []) if s["port"] == port), None)


def peer_counted(agent: InstalledAgent, port: int, peer: str, connections: int) -> dict[str, Any] | None:
    server = served(agent, port) or {}
    return next((p for p in server.get("peers", []) if p["peer"] == peer and p["connections"] >= connections
                 and p["open"] == 0), None)


def extraction(agent: InstalledAgent, peer: str) -> list[dict[str, Any]]:
    return [a for a in alerts(agent, "model-served-extraction") if a["evidence"]["peer"] == peer]


def test_an_exposed_server_is_a_finding_and_a_burst_from_a_remote_peer_an_extraction_alert(
        service: tuple[InstalledAgent, Path], people: tuple[Person, Person], peers: Peers) -> None:  # noqa: F811
    agent, model = service
    _, bo = people
    started = time.monotonic()
    process, port = start_as(bo, model, "0.0.0.0")
    try:
        (finding,) = wait_for(lambda: [a for a in alerts(agent, EXPOSURE_RULES) if f":{port} " in a["message"]],
                              timeout=60, what="the exposure finding")
        print(f"exposure finding {time.monotonic() - started:.2f} s after the server started")
        assert finding["rule"] == "model-served-to-all-interfaces" and finding["severity"] == 7
        assert finding["model"] == model.parent.name and finding["process"]["user"] == bo.name
        assert "ollama" in finding["message"] and "answers without credentials" in finding["message"]
        # the status snapshot is written every few seconds: it may come after the finding
        server = wait_for(lambda: served(agent, port), timeout=30, what="the server in `status`")
        assert (server["reach"], server["authenticated"]) == ("all-interfaces", False)

        answered = peers.ask(port, BURST, peers.remote)
        asked = time.monotonic()
        alert = wait_for(lambda: [a for a in extraction(agent, peers.remote)
                                  if a["evidence"]["peer_connections"] >= 1000], timeout=60,
                         what="the extraction alert")[-1]
        print(f"extraction alert {time.monotonic() - asked:.2f} s after the burst ended")
        evidence = alert["evidence"]
        assert alert["model"] == model.parent.name and alert["destination"]["address"] == peers.remote
        assert alert["process"]["user"] == bo.name and f"[{process.pid}]" in evidence["server_process"]
        assert "burst" in evidence["exceeded"] and evidence["request_bytes"] > 0 and evidence["answer_bytes"] > 0
        # every connection is counted, each with its final counts from the kernel: the whole burst
        counted = wait_for(lambda: peer_counted(agent, port, peers.remote, BURST), timeout=60,
                           what=f"all {BURST} connections of {peers.remote} counted")
        assert counted["connections"] == BURST and counted["bytes_sent"] >= answered
        assert len({a["evidence"]["incident"] for a in extraction(agent, peers.remote)}) == 1  # one incident

        # the same volume from loopback, and from the allowlisted half of the network: counted, not alerted
        ask("127.0.0.1", port, BURST)
        wait_for(lambda: peer_counted(agent, port, "127.0.0.1", BURST), timeout=60, what="loopback counted")
        assert extraction(agent, "127.0.0.1") == []
    finally:
        stop(process)


def test_a_server_bound_to_loopback_is_no_finding(service: tuple[InstalledAgent, Path],
                                                  people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    _, bo = people
    process, port = start_as(bo, model, "127.0.0.1")
    try:
        server = wait_for(lambda: served(agent, port), timeout=60, what="the loopback server in `status`")
        assert (server["reach"], server["exposed"], server["protocol"]) == ("loopback", False, "ollama")
        models = {m["name"]: m for m in agent.models()}
        assert [s["port"] for s in models[model.parent.name]["serving"]] == [port]  # `weightwarden models`
        # the rules have judged its model-served event: the event is stored, and no finding names the server
        wait_for(lambda: [e for e in agent.json_lines("events") if e["event"]["action"] == "model-served"
                          and f":{port} " in e["message"]], timeout=30, what="its model-served event")
        assert [a for a in alerts(agent, EXPOSURE_RULES) if f":{port} " in a["message"]] == []
    finally:
        stop(process)


def test_an_allowlisted_peer_is_counted_not_alerted(people: tuple[Person, Person], peers: Peers,  # noqa: F811
                                                    tmp_path: Path) -> None:
    # the default config, and one line an admin adds: the network of the team's own evaluation hosts
    agent, model = _service(people, tmp_path, f'[detect]\nallow_destinations = ["{peers.trusted_network}"]\n')
    _, bo = people
    try:
        process, port = start_as(bo, model, "0.0.0.0")
        try:
            wait_for(lambda: served(agent, port), timeout=60, what="the server in `status`")
            peers.ask(port, BURST, peers.trusted)
            wait_for(lambda: peer_counted(agent, port, peers.trusted, BURST), timeout=60, what="the peer counted")
            assert extraction(agent, peers.trusted) == []
        finally:
            stop(process)
    finally:
        assert agent.stop() == 0
