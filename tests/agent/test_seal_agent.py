"""Sealing with a real running agent (docs/sealing.md): the sealed model stays in the inventory as itself and
its copies are recognised; unsealing goes through the agent, which asks the access policy about the caller
(two real local users, one allowed, one refused) and records both outcomes; a SIGKILL of the agent in the
middle of an unseal loses nothing; a long unseal does not hold up the control socket.

The agent runs as root in system mode with its own data dir and access policy folder (WEIGHTWARDEN_ACCESS_DIR,
never /etc), watching only its configured roots (QUIET_WORLD). The models are written by the safetensors
library; the users run the real `weightwarden` CLI under their own uid (setpriv).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import QUIET_WORLD, WEIGHTWARDEN, json_lines, run_cli, wait_for, write_config
from tests.agent.cli.test_agent_e2e import RunningAgent, copy_alerts
from tests.agent.test_installed_scope import Person, people  # noqa: F401 - the fixture
from tests.conftest import write_safetensors
from weightwarden.agent import control
from weightwarden.agent.access.policy import SYSTEM_DIR_ENV
from weightwarden.agent.seal.container import MAGIC
from weightwarden.agent.seal.inplace import CRASH_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.root]

MODEL = "llama-7b"


@pytest.fixture(scope="module")
def users(people: tuple[Person, Person]) -> tuple[Person, Person]:  # noqa: F811
    """Two local accounts made for the test: the policy allows the first to unseal the model, not the second."""
    return people


class Place:
    """A folder other users can enter (the test's own temporary tree is 0700): models, data, policies."""

    def __init__(self, root: Path, allowed: str) -> None:
        self.root = root
        self.models, self.elsewhere, self.data, self.policies = (root / n for n in
                                                                 ("models", "elsewhere", "data", "access.d"))
        for folder in (self.models, self.elsewhere, self.policies):
            folder.mkdir(mode=0o755)
        self.data.mkdir(mode=0o711)  # the socket inside is 0666: anyone may connect and be judged by uid
        os.chmod(self.data, 0o711)
        (self.policies / "sealed.yml").write_text(
            f"id: sealed-llama\napplies_to:\n  models: [{MODEL}]\nmode: enforce\n"
            f"allow:\n  - users: [{allowed}, root]\n    access: read-write\n")
        self.config = write_config(root / "config.toml", data_dir=self.data, protected=[self.models],
                                   watched=[self.elsewhere])
        with self.config.open("a") as config:
            config.write(QUIET_WORLD)
        os.chmod(self.config, 0o644)
        self.env = {**os.environ, SYSTEM_DIR_ENV: str(self.policies)}

    def model(self, rows: int = 2048, name: str = MODEL) -> tuple[Path, bytes]:
        path = write_safetensors(self.models / name / "model.safetensors", rows=rows)
        os.chmod(path.parent, 0o755)
        os.chmod(path, 0o644)
        return path, path.read_bytes()

    def cli(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--config", str(self.config), env={SYSTEM_DIR_ENV: str(self.policies),
                                                                 **(extra_env or {})})

    def json_models(self) -> list[dict[str, Any]]:
        result = self.cli("models", "--json")
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def as_user(self, person: Person, *args: str) -> subprocess.CompletedProcess[bytes]:
        return person.run(WEIGHTWARDEN, *args, "--config", str(self.config), check=False)

    def agent(self, extra_env: dict[str, str] | None = None) -> RunningAgent:
        started = len(events_of(self.cli("events", "--json").stdout, "scan-finished"))
        running = RunningAgent(self.config, {**self.env, **(extra_env or {})})
        # this agent's own first scan (a restarted agent's store holds the previous one's) and its socket
        wait_for(lambda: len(events_of(self.cli("events", "--json").stdout, "scan-finished")) > started,
                 timeout=60, what="the initial inventory")
        wait_for(lambda: self._serving(running), timeout=30, what="the control socket")
        return running

    def _serving(self, running: RunningAgent) -> bool:
        try:
            reply = control.request(control.socket_path(str(self.data)), {"op": "ping"})
        except control.ControlError:
            return False
        return bool(reply.get("ok")) and reply["agent"]["pid"] == running.process.pid


@pytest.fixture
def place(users: tuple[Person, Person]) -> Iterator[Place]:
    root = Path(tempfile.mkdtemp(prefix="ww-seal-agent-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        yield Place(root, users[0].name)
    finally:
        shutil.rmtree(root)


def events_of(text: str, action: str) -> list[dict[str, Any]]:
    return [e for e in json_lines(text) if e["event"]["action"] == action]


def events(agent: RunningAgent, action: str, path: Path | None = None) -> list[dict[str, Any]]:
    return [e for e in agent.records("events") if e["event"]["action"] == action
            and (path is None or (e.get("file") or {}).get("path") == str(path))]


def stored_prints(place: Place, path: Path, *, plain_size: int | None = None) -> list[tuple[Any, ...]]:
    """The tensor rows the store holds for `path` (read-only); with `plain_size`: those the agent's file cache
    kept for the plain model it examined at the start (the sealed entry must carry the same)."""
    database = sqlite3.connect(f"file:{place.data / 'weightwarden.db'}?mode=ro", uri=True)
    try:
        if plain_size is not None:
            rows = database.execute("select tensors from file_cache_tensors where size = ?", [plain_size]).fetchall()
            assert len(rows) == 1
            return sorted((fp, name, base64.b64decode(block)) for (text,) in rows
                          for fp, _e, _b, _i, name, block in json.loads(text))
        return sorted(database.execute("select fingerprint, name, block from model_tensors where path = ?",
                                       [str(path)]).fetchall())
    finally:
        database.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith(".wwseal-"))


def test_sealed_model_stays_itself_and_unsealing_asks_the_policy(place: Place, users: tuple[Person, Person]
                                                                ) -> None:
    allowed, refused = users
    path, plain = place.model()
    agent = place.agent()
    try:
        (found,) = [e for e in events(agent, "model-discovered", path)]
        plain_sha = hashlib.sha256(plain).hexdigest()
        assert found["file"]["sha256"] == plain_sha

        sealed_run = place.cli("seal", str(path))
        assert sealed_run.returncode == 0, sealed_run.stderr
        (sealed_event,) = wait_for(lambda: events(agent, "model-sealed", path), timeout=30,
                                   what="the model-sealed record")
        assert sealed_event["model"] == MODEL and sealed_event["file"]["format"] == "sealed"
        assert sealed_event["details"]["format_details"]["sealed"]["sha256"] == plain_sha
        (model,) = [m for m in wait_for(lambda: [m for m in place.json_models() if "sealed" in m["formats"]],
                                        timeout=30, what="the sealed file in the inventory")]
        assert model["name"] == MODEL and model["files_protected"] == 1
        # its prints are the plaintext's as the inventory knew them: tensor names and similarity corners too
        assert stored_prints(place, path) == stored_prints(place, path, plain_size=len(plain)) != []

        # A byte copy of the sealed file elsewhere is that model
        copy = place.elsewhere / "backup.bin"
        subprocess.run(["cp", str(path), str(copy)], check=True)
        (alert,) = wait_for(lambda: copy_alerts(agent, copy), timeout=30, what="the copy alert for the sealed copy")
        assert alert["model"] == MODEL and alert["evidence"]["source_path"] == str(path)

        sealed = path.read_bytes()
        assert sealed.startswith(MAGIC) and plain[200:264] not in sealed

        # Refused: a clear error, the file stays sealed, a chained unseal-refused record and its alert
        result = place.as_user(refused, "unseal", str(path))
        assert result.returncode == 1, result.stderr
        assert b"the access policy does not allow" in result.stderr and refused.name.encode() in result.stderr
        assert path.read_bytes() == sealed and leftovers(path.parent) == []
        (record,) = wait_for(lambda: events(agent, "unseal-refused", path), timeout=30, what="unseal-refused")
        assert record["file"]["format"] == "safetensors" and record["file"]["sha256"] == plain_sha
        assert record["process"]["user"] == refused.name and record["model"] == MODEL
        assert record["details"]["unseal"]["decision"]["policy"] == "sealed-llama"
        wait_for(lambda: [a for a in agent.records("alerts") if a["rule"] == "unseal-refused"], timeout=30,
                 what="the unseal-refused alert")

        # Allowed by the policy, but the file's own permissions would not let them read it: refused too
        os.chmod(path, 0o600)
        result = place.as_user(allowed, "unseal", str(path))
        assert result.returncode == 1 and b"may not read this file" in result.stderr, result.stderr
        assert path.read_bytes() == sealed
        wait_for(lambda: [e for e in events(agent, "unseal-refused", path)
                          if e["process"]["user"] == allowed.name], timeout=30, what="the second refusal")
        os.chmod(path, 0o644)

        # Allowed: the plaintext back byte for byte, owner, group and mode kept, recorded with who asked
        before = path.stat()
        result = place.as_user(allowed, "unseal", str(path))
        assert result.returncode == 0, result.stderr
        assert path.read_bytes() == plain
        after = path.stat()
        assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
        (done,) = wait_for(lambda: events(agent, "model-unsealed", path), timeout=30, what="model-unsealed")
        assert done["process"]["user"] == allowed.name and done["details"]["unseal"]["decision"]["allowed"]
        assert leftovers(path.parent) == []
        assert agent.stop() == 0
    finally:
        if agent.process.poll() is None:
            agent.stop(signal.SIGKILL)
    verified = place.cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr  # every record chained and signed


def test_a_sealed_copy_made_out_of_sight_is_a_copy_of_the_model(place: Place) -> None:
    """Copied, sealed where the agent does not look, then moved into a watched folder: still that model."""
    path, _plain = place.model()
    agent = place.agent()
    try:
        hidden = place.root / "unwatched"
        hidden.mkdir()
        shutil.copy(path, hidden / "weights.bin")
        sealed_run = place.cli("seal", str(hidden / "weights.bin"))
        assert sealed_run.returncode == 0, sealed_run.stderr
        target = place.elsewhere / "weights.bin"
        os.rename(hidden / "weights.bin", target)
        (alert,) = wait_for(lambda: copy_alerts(agent, target), timeout=30, what="the sealed copy's alert")
        assert alert["model"] == MODEL and alert["evidence"]["source_path"] == str(path)
        (created,) = wait_for(lambda: events(agent, "model-created", target), timeout=30, what="the copy's record")
        assert created["file"]["format"] == "sealed" and created["details"]["protected"]
        assert created["details"]["copy_of"] == str(path)
    finally:
        agent.stop(signal.SIGKILL)


def test_an_unseal_request_that_is_not_a_sealed_file_or_not_absolute_is_a_clear_error(place: Place) -> None:
    path, plain = place.model()
    agent = place.agent()
    try:
        socket = control.socket_path(str(place.data))
        assert "absolute path" in control.request(socket, {"op": "unseal", "path": "model.bin"})["error"]
        assert "no unseal job" in control.request(socket, {"op": "unseal", "job": "nope"})["error"]
        result = place.cli("unseal", str(path))
        assert result.returncode == 1 and "not a sealed file" in result.stderr
        assert path.read_bytes() == plain
    finally:
        agent.stop(signal.SIGKILL)


@pytest.mark.parametrize("point", ["chunk-3", "before-rename", "after-rename"])
def test_sigkill_of_the_agent_during_an_unseal_loses_nothing(place: Place, point: str) -> None:
    path, plain = place.model()
    sealed_run = place.cli("seal", "--chunk-size", "65536", str(path))
    assert sealed_run.returncode == 0, sealed_run.stderr
    sealed = path.read_bytes()
    agent = place.agent({CRASH_ENV: point})  # the agent kills itself at that point of its unseal
    try:
        result = place.cli("unseal", str(path))
        assert agent.process.wait(timeout=60) == -signal.SIGKILL
        assert result.returncode == 2 and "agent not reachable" in result.stderr
    finally:
        if agent.process.poll() is None:
            agent.stop(signal.SIGKILL)
    content = path.read_bytes()
    if point == "after-rename":
        assert content == plain
    else:
        assert content == sealed  # untouched: its plaintext only ever went to the temporary file
        (left,) = leftovers(path.parent)
        info = (path.parent / left).stat()
        # root's: 0600 while written, the sealed file's own mode once whole (what the plaintext is given)
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600 if point.startswith("chunk") else 0o644)
        again = place.agent()
        try:
            assert leftovers(path.parent) == []  # the restarted agent removed it (its unseal journal)
            result = place.cli("unseal", str(path))
            assert result.returncode == 0, result.stderr
            assert path.read_bytes() == plain and leftovers(path.parent) == []
        finally:
            again.stop()


def test_sigkill_of_the_agent_at_random_moments_of_unseals_never_loses_the_file(place: Place) -> None:
    path = place.models / "big.bin"
    data = os.urandom(256 << 20)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    moments = random.Random(11)
    outcomes = set()
    for _round in range(4):
        if path.read_bytes()[:8] != MAGIC:
            assert place.cli("seal", "--chunk-size", "1048576", str(path)).returncode == 0
        agent = place.agent()
        socket = control.socket_path(str(place.data))
        try:
            assert control.request(socket, {"op": "unseal", "path": str(path)})["ok"]
            time.sleep(moments.uniform(0.0, 0.6))
            agent.process.kill()
            agent.process.wait(timeout=60)
        finally:
            if agent.process.poll() is None:
                agent.stop(signal.SIGKILL)
        content = path.read_bytes()
        midway = bool(leftovers(path.parent))  # killed while writing the plaintext beside it
        if content == data:
            outcomes.add(("plain", midway))
        else:  # the sealed file whole: it verifies, and holds exactly the plaintext
            verified = place.cli("seal", "--verify", str(path))  # (which also removes root's leftover)
            assert verified.returncode == 0, verified.stderr
            outcomes.add(("sealed", midway))
    again = place.agent()  # cleans what the last kill left
    try:
        assert leftovers(path.parent) == []
        if path.read_bytes() != data:
            assert place.cli("unseal", str(path)).returncode == 0
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    finally:
        again.stop()
    # at least one kill landed while the plaintext was being written (not always before or after the unseal)
    assert any(midway for _state, midway in outcomes), outcomes


def test_a_long_unseal_does_not_hold_up_other_requests(place: Place) -> None:
    """Three big unseals at once (more than the socket's request threads) while others ping the agent."""
    folder = place.models / "big"
    folder.mkdir()
    paths = []
    for n in range(3):
        path = folder / f"part{n}.bin"
        with path.open("wb") as out:
            for _ in range(16):
                out.write(os.urandom(8 << 20))  # 128 MiB each
        paths.append(path)
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    sealed = place.cli("seal", *map(str, paths))
    assert sealed.returncode == 0, sealed.stderr
    agent = place.agent()
    try:
        socket = control.socket_path(str(place.data))
        jobs = [control.request(socket, {"op": "unseal", "path": str(p)}) for p in paths]
        assert all(job["ok"] and not job["done"] for job in jobs), jobs
        answered_while_busy = 0
        while True:
            started = time.monotonic()
            assert control.request(socket, {"op": "ping"}, timeout=2.0)["ok"]
            assert time.monotonic() - started < 1.0
            states = [control.request(socket, {"op": "unseal", "job": job["job"]}) for job in jobs]
            assert all(state["ok"] for state in states), states
            if all(state["done"] for state in states):
                break
            answered_while_busy += 1
            jobs = [job for job, state in zip(jobs, states, strict=True) if not state["done"]]
            time.sleep(0.05)
        assert answered_while_busy >= 3
        assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths] == digests
    finally:
        agent.stop(signal.SIGKILL)
