"""The agent as users run it: access events for a protected model in the store, `weightwarden status` with
live figures, stale once the agent stops; and user mode, which keeps working with reduced coverage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import WEIGHTWARDEN, run_cli, wait_for, write_config
from tests.agent.cli.test_agent_e2e import RunningAgent
from tests.agent.sensors.conftest import PYTHON, require_fanotify, require_proc_connector
from tests.conftest import write_safetensors

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("models", "elsewhere", "data")}
    for path in paths.values():
        path.mkdir()
    write_safetensors(paths["models"] / "llama" / "model.safetensors", rows=2048)
    paths["model"] = paths["models"] / "llama" / "model.safetensors"
    paths["config"] = write_config(tmp_path / "config.toml", data_dir=paths["data"], protected=[paths["models"]],
                                   watched=[paths["elsewhere"]])
    with paths["config"].open("a") as config:
        config.write("\n[sensors]\nstatus_seconds = 0.5\nnetwork_poll_seconds = 0.5\n"
                     "file_marks = false\n")  # only what the test does: tests.agent.cli.helpers.QUIET_WORLD
    return paths


class Agent(RunningAgent):
    """The e2e tests' running agent, with extra command-line options."""

    def __init__(self, config: Path, env: dict[str, str], *extra: str) -> None:
        self.config, self.env, self.log = config, env, config.with_suffix(".log")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([WEIGHTWARDEN, "agent", "--config", str(config), *extra], env=env,
                                            stdout=subprocess.DEVNULL, stderr=log)


def start(layout: dict[str, Path], *extra: str) -> RunningAgent:
    return Agent(layout["config"], dict(os.environ), *extra)


def status(layout: dict[str, Path], *extra: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("status", "--json", "--config", str(layout["config"]), *extra)
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}


def events(agent: RunningAgent, action: str) -> list[dict[str, Any]]:
    return [e for e in agent.records("events") if e["event"]["action"] == action]


@pytest.fixture
def system_agent(layout: dict[str, Path]) -> Iterator[RunningAgent]:
    if os.geteuid() != 0:
        pytest.skip("system mode needs root")
    require_fanotify()
    require_proc_connector()
    agent = start(layout)
    try:
        wait_for(lambda: "scan-finished" in agent.actions(), timeout=60, what="the initial inventory")
        yield agent
    finally:
        if agent.process.poll() is None:
            agent.stop(signal.SIGKILL)


@pytest.mark.root
def test_reads_of_a_protected_model_are_stored_with_the_process(system_agent: RunningAgent,
                                                                layout: dict[str, Path]) -> None:
    model = layout["model"]
    def marked() -> bool:
        sensors = status(layout)[1].get("sensors", [])
        return any(s["name"] == "access" and "1 files marked" in s["message"] for s in sensors)

    wait_for(marked, timeout=60, what="the model file to be marked")
    shell = subprocess.run(["sh", "-c", f"cat '{model}' > /dev/null"], check=True)
    del shell
    (read,) = wait_for(lambda: events(system_agent, "model-read"), timeout=60, what="the model-read event")
    assert read["model"] == "llama" and read["file"]["path"] == str(model)
    assert read["file"]["format"] == "safetensors" and read["file"]["sha256"]
    process = read["process"]
    assert process["name"] == "cat" and process["executable"].endswith("/cat")
    assert process["command_line"] == f"cat {model}" and process["user"] == "root" and process["uid"] == 0
    assert process["parents"][0]["name"] == "sh" and process["parents"][1]["pid"] == os.getpid()
    assert process["mapped"] is False and read["details"]["access"]["mapped"] is False
    assert events(system_agent, "model-opened")[0]["process"]["pid"] == process["pid"]
    # the agent hashed the model at start, and none of that is reported
    assert all(e["process"]["pid"] != system_agent.process.pid for e in events(system_agent, "model-opened"))

    code, snapshot = status(layout)
    assert code == 0 and snapshot["stale"] is False and snapshot["coverage"] == "full"
    sensors = {s["name"]: s for s in snapshot["sensors"]}
    assert set(sensors) >= {"files", "processes", "access", "network", "mounts"}
    assert sensors["access"]["method"] == "fanotify" and sensors["access"]["privilege"] == "root"
    assert sensors["processes"]["method"] == "proc-connector" and sensors["processes"]["events"] > 0
    table = run_cli("status", "--config", str(layout["config"]))
    assert table.returncode == 0 and "fanotify" in table.stdout and "DROPS" in table.stdout

    assert system_agent.stop() == 0
    code, snapshot = status(layout)
    assert code == 1 and snapshot["stale"] is True and snapshot["running"] is False


@pytest.mark.root
def test_a_model_under_a_name_that_is_not_utf8_keeps_every_protection(system_agent: RunningAgent,
                                                                       layout: dict[str, Path]) -> None:
    """Raw bytes are the identity of a path: renamed to a non-UTF-8 name, the model stays marked and its
    reads name the model; a new model written under such a name is inventoried, marked and named too."""
    folder = os.fsencode(layout["model"].parent)
    renamed = folder + b"/\xff-weights.safetensors"

    def marked(count: int) -> bool:
        sensors = status(layout)[1].get("sensors", [])
        return any(s["name"] == "access" and f"{count} files marked" in s["message"] for s in sensors)

    wait_for(lambda: marked(1), timeout=60, what="the model file to be marked")
    os.rename(os.fsencode(layout["model"]), renamed)
    (moved,) = wait_for(lambda: events(system_agent, "model-moved"), timeout=30, what="the rename")
    assert moved["file"]["path_hex"] == renamed.hex() and moved["model"] == "llama"
    subprocess.run([b"cat", renamed], check=True, stdout=subprocess.DEVNULL)
    reads = wait_for(lambda: [e for e in events(system_agent, "model-read") if e["process"]["name"] == "cat"],
                     timeout=30, what="the read of the renamed model")
    assert reads[0]["model"] == "llama" and reads[0]["file"]["path_hex"] == renamed.hex()
    assert reads[0]["file"]["format"] == "safetensors"

    second = folder + b"/other-\xfe.safetensors"
    write_safetensors(Path(os.fsdecode(second)), seed=9)
    created = wait_for(lambda: [e for e in events(system_agent, "model-created")
                                if e["file"].get("path_hex") == second.hex()], timeout=30, what="the new model")
    wait_for(lambda: marked(2), timeout=30, what="both files marked")
    subprocess.run([b"head", b"-c", b"100000", second], check=True, stdout=subprocess.DEVNULL)
    # head's read (the service sees the whole machine: another agent hashing the new file reads it too)
    read = wait_for(lambda: [e for e in events(system_agent, "model-read") if e["process"]["name"] == "head"
                             and e["file"].get("path_hex") == second.hex()], timeout=30, what="its read")
    assert read[0]["model"] == created[0]["model"]


@pytest.mark.root
def test_a_model_is_guarded_the_moment_it_is_recorded(system_agent: RunningAgent, layout: dict[str, Path]) -> None:
    """No window between the inventory and the access marks: a model read right after its model-created
    event is stored has its read recorded (the marks used to follow on a one-second poll)."""
    fresh = write_safetensors(layout["models"] / "fresh" / "model.safetensors", seed=5, rows=256)
    def recorded() -> list[dict[str, Any]]:  # by its file event, or by the rescan of its new folder
        return [e for e in system_agent.records("events") if e["event"]["action"] in ("model-created",
                "model-discovered") and e["file"]["path"] == str(fresh)]

    wait_for(recorded, timeout=30, what="the new model recorded")
    subprocess.run(["cat", str(fresh)], check=True, stdout=subprocess.DEVNULL)
    reads = wait_for(lambda: [e for e in events(system_agent, "model-read") if e["file"]["path"] == str(fresh)],
                     timeout=30, what="the read of the model just recorded")
    assert reads[0]["process"]["name"] == "cat" and reads[0]["model"] == "fresh"


READER = textwrap.dedent("""
    import sys
    with open(sys.argv[1], "rb") as f:
        f.read(4096)
        print("holding", flush=True)
        sys.stdin.readline()
""")


def test_user_mode_reports_reduced_coverage_and_still_names_holders(layout: dict[str, Path]) -> None:
    agent = start(layout, "--mode", "user")
    reader = None
    try:
        wait_for(lambda: "scan-finished" in agent.actions(), timeout=60, what="the initial inventory")
        def watched() -> tuple[int, dict[str, Any]] | None:
            code, snapshot = status(layout, "--mode", "user")
            access = [s for s in snapshot.get("sensors", []) if s["name"] == "access"]
            return (code, snapshot) if access and access[0]["message"].startswith("1 files watched") else None

        code, snapshot = wait_for(watched, timeout=60, what="the model file to be watched for opens")
        assert code == 0 and snapshot["coverage"] == "reduced"
        assert {"access", "processes", "network"} <= set(snapshot["gaps"])
        methods = {s["name"]: s["method"] for s in snapshot["sensors"]}
        assert methods["access"] == "inotify+proc-fd-scan" and methods["processes"] == "psutil"
        health = [e["message"] for e in events(agent, "sensor-health")]
        assert any("reduced coverage" in message for message in health)
        reader = subprocess.Popen([PYTHON, "-c", READER, str(layout["model"])], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert reader.stdout is not None and reader.stdout.readline().strip() == "holding"
        held = wait_for(lambda: [e for e in events(agent, "model-held") if e["process"]["pid"] == reader.pid],
                        timeout=60, what="the holder of the model to be named")
        assert held[0]["process"]["command_line"].startswith(PYTHON) and held[0]["model"] == "llama"
        assert held[0]["process"]["bytes_read"] == 4096
    finally:
        if reader is not None:
            reader.kill()
            reader.wait(timeout=10)
            for stream in (reader.stdin, reader.stdout):
                if stream is not None:
                    stream.close()
        assert agent.stop() == 0
