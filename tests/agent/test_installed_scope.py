"""Acceptance (issue 13): the agent exactly as the installed service runs it protects what the people on the
machine have, wherever it is, without anyone listing a folder.

Two local users are created for the test. The agent runs as the unit runs it: `weightwarden agent --mode
system`, root, no HOME, no config file, the unit's environment (only WEIGHTWARDEN_DATA_DIR, here a temporary
folder instead of /var/lib/weightwarden). Each copy is made by one of the users, never by root, into places
nothing names to the agent: another folder of their home, a stick mounted after the agent started, a share
mounted after it started, a name that is not UTF-8. A training script's checkpoint in a project folder must
appear in `weightwarden models`.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import WEIGHTWARDEN
from tests.agent.sensors.conftest import require_fanotify, require_proc_connector
from tests.agent.sensors.test_mounts import sshd  # noqa: F401 - the fixture
from tests.conftest import write_safetensors
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

UNIT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # systemd's default PATH


@dataclass(frozen=True)
class Person:
    name: str
    uid: int
    gid: int
    home: Path

    def run(self, *argv: str | bytes, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """A command as this user (not root): their uid, gid and groups, their HOME."""
        return subprocess.run(self._as_me(argv), env=self._environment(), cwd=self.home, check=check,
                              capture_output=True, timeout=120)

    def start(self, *argv: str | bytes) -> subprocess.Popen[bytes]:
        """A long-running command as this user (a server, a proxy): the caller stops it."""
        return subprocess.Popen(self._as_me(argv), env=self._environment(), cwd=self.home,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _as_me(self, argv: tuple[str | bytes, ...]) -> list[str | bytes]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", *argv]

    def _environment(self) -> dict[str, str]:
        return {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "USER": self.name}


@pytest.fixture(scope="module")
def people() -> Iterator[tuple[Person, Person]]:
    if os.geteuid() != 0:
        pytest.skip("creating users and running the system service needs root")
    for tool in ("useradd", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if os.path.exists("/etc/weightwarden/config.toml"):
        pytest.skip("this machine has an installed config: the test runs the service without one")
    require_fanotify()
    require_proc_connector()
    tag = secrets.token_hex(3)
    made: list[Person] = []
    try:
        for first in ("ana", "bo"):
            name = f"ww{first}{tag}"
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True,
                           capture_output=True)
            entry = pwd.getpwnam(name)
            made.append(Person(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)))
        yield made[0], made[1]
    finally:
        for person in made:
            subprocess.run(["userdel", "--remove", "--force", person.name], check=False, capture_output=True)


class InstalledAgent:
    """`weightwarden agent --mode system` with the unit's environment, and the CLI the admin would use."""

    def __init__(self, data: Path, config: Path | None = None) -> None:
        """`config`: an admin's config.toml, given by WEIGHTWARDEN_CONFIG instead of /etc/weightwarden/config.toml
        (the way the data dir moves; the real /etc file would reach every service on the machine)."""
        self.env = {"PATH": UNIT_PATH, "WEIGHTWARDEN_DATA_DIR": str(data)}
        if config is not None:
            self.env["WEIGHTWARDEN_CONFIG"] = str(config)
        self.log = data.parent / "agent.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([WEIGHTWARDEN, "agent", "--mode", "system"], env=self.env,
                                            stdout=subprocess.DEVNULL, stderr=log)

    def json_lines(self, *command: str) -> list[dict[str, Any]]:
        result = subprocess.run([WEIGHTWARDEN, *command, "--json", "--mode", "system"], env=self.env,
                                capture_output=True, text=True, timeout=60)
        if result.returncode not in (0, 1):
            return []
        text = result.stdout.strip()
        if text.startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def models(self) -> list[dict[str, Any]]:
        return self.json_lines("models")

    def copy_alerts(self, target: str) -> list[dict[str, Any]]:
        """Copy alerts whose destination is `target` (an alert for another copy lists earlier ones among
        its sources: the sshfs server's own file, on this machine, is such a copy)."""
        return [a for a in self.json_lines("alerts")
                if a["rule"] == "model-copy" and (a.get("destination") or {}).get("path") == target]

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; killed if it outlives the unit's TimeoutStopSec (the test fails)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise


def owned_model(person: Person, relative: str, seed: int) -> Path:
    path = write_safetensors(person.home / relative, seed=seed, rows=256)
    for part in [path, *path.parents]:
        if part == person.home:
            break
        os.chown(part, person.uid, person.gid)
    return path


@pytest.fixture(scope="module")
def installed(people: tuple[Person, Person], tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[InstalledAgent, Path]]:
    ana, _ = people
    model = owned_model(ana, "models/llama-private/model.safetensors", seed=41)
    data = tmp_path_factory.mktemp("service") / "data"
    agent = InstalledAgent(data)
    try:
        def inventoried() -> bool:
            return any(str(model) in m.get("paths", []) for m in agent.models())

        wait_for(inventoried, timeout=120, what="ana's model in the inventory of the service")
        yield agent, model
    finally:
        assert agent.stop() == 0  # a clean stop within the unit's 90 s, final signature and all


def expect_copy_alert(agent: InstalledAgent, person: Person, target: str, started: float) -> dict[str, Any]:
    (alert,) = wait_for(lambda: agent.copy_alerts(target), timeout=30, what=f"the copy alert for {target}")
    seconds = time.monotonic() - started
    assert alert["model"] == "llama-private"
    assert (alert.get("process") or {}).get("user") == person.name, alert.get("process")
    print(f"copy alert for {target} after {seconds:.2f} s")
    return alert


def test_a_copy_into_another_folder_of_the_home(installed: tuple[InstalledAgent, Path],
                                                people: tuple[Person, Person]) -> None:
    agent, model = installed
    ana, _ = people
    ana.run("mkdir", "-p", str(ana.home / "stash"))
    started = time.monotonic()
    ana.run("cp", str(model), str(ana.home / "stash" / "w.bin"))
    alert = expect_copy_alert(agent, ana, str(ana.home / "stash" / "w.bin"), started)
    assert alert["destination"]["kind"] in ("local", "temporary")


def test_a_copy_under_a_name_that_is_not_utf8(installed: tuple[InstalledAgent, Path],
                                              people: tuple[Person, Person]) -> None:
    agent, model = installed
    ana, _ = people
    ana.run("mkdir", "-p", str(ana.home / "notes"))
    raw = os.fsencode(ana.home / "notes") + b"/\xffweights.bin"
    started = time.monotonic()
    ana.run(b"cp", os.fsencode(model), raw)
    shown = os.fsdecode(os.fsencode(ana.home / "notes")) + "/\\xffweights.bin"
    expect_copy_alert(agent, ana, shown, started)


@pytest.fixture
def stick(tmp_path: Path, people: tuple[Person, Person]) -> Iterator[Path]:
    """A fresh ext4 in an image file, loop-mounted where the desktop mounts what ana plugs in
    (/media/USER/LABEL), after the agent started; owned by her, as udisks makes it."""
    ana, _ = people
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 (e2fsprogs) is not installed")
    image = tmp_path / "stick.img"
    with image.open("wb") as handle:
        handle.truncate(48 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    point = Path("/media") / ana.name / "STICK"
    point.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        point.rmdir()
        pytest.skip(f"cannot loop-mount a filesystem here: {mounted.stderr.strip()}")
    try:
        os.chown(point, ana.uid, ana.gid)
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
        shutil.rmtree(point.parent, ignore_errors=True)


def test_a_copy_onto_a_stick_mounted_after_the_agent_started(installed: tuple[InstalledAgent, Path],
                                                             people: tuple[Person, Person], stick: Path) -> None:
    agent, model = installed
    ana, _ = people
    started = time.monotonic()
    ana.run("cp", str(model), str(stick / "backup.safetensors"))
    alert = expect_copy_alert(agent, ana, str(stick / "backup.safetensors"), started)
    assert alert["destination"]["kind"] == "removable" and alert["severity"] == 9


@pytest.fixture
def share(sshd: tuple[int, Path], tmp_path: Path, people: tuple[Person, Person]) -> Iterator[Path]:  # noqa: F811
    """An sshfs share (the private sshd on 127.0.0.1 of the mount sensor's tests) mounted into ana's home
    after the agent started, as an admin mounts a team share for the people on the machine (allow_other)."""
    ana, _ = people
    port, key = sshd
    remote = tmp_path / "remote"
    remote.mkdir(mode=0o777)
    point = ana.home / "teamshare"
    point.mkdir()
    mounted = subprocess.run(
        ["sshfs", f"root@127.0.0.1:{remote}", str(point), "-p", str(port), "-o",
         f"IdentityFile={key},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes,allow_other"],
        capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"sshfs could not mount here: {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["fusermount3", "-u", str(point)], check=False, capture_output=True)


def test_a_copy_into_a_share_mounted_after_the_agent_started(installed: tuple[InstalledAgent, Path],
                                                             people: tuple[Person, Person], share: Path) -> None:
    agent, model = installed
    ana, _ = people
    started = time.monotonic()
    ana.run("cp", str(model), str(share / "llama.safetensors"))
    alert = expect_copy_alert(agent, ana, str(share / "llama.safetensors"), started)
    assert alert["destination"]["kind"] == "network-share"


CHECKPOINT = """
import sys
import numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(7)
save_file({f"layer.{i}.weight": rng.standard_normal((256, 64)).astype(np.float32) for i in range(4)}, sys.argv[1])
"""


def test_a_checkpoint_written_into_a_project_folder_is_inventoried(installed: tuple[InstalledAgent, Path],
                                                                   people: tuple[Person, Person]) -> None:
    agent, _ = installed
    _, bo = people
    out = bo.home / "code" / "proj" / "out"
    bo.run("mkdir", "-p", str(out))
    checkpoint = out / "checkpoint-500.safetensors"
    python = sys.executable
    bo.run(python, "-c", CHECKPOINT, str(checkpoint))
    started = time.monotonic()
    wait_for(lambda: any(str(checkpoint) in m.get("paths", []) for m in agent.models()), timeout=30,
             what="the checkpoint in `weightwarden models`")
    seconds = time.monotonic() - started
    print(f"checkpoint inventoried after {seconds:.2f} s")
    assert seconds < 5
