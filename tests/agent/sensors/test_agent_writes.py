"""The agent as the installed service runs it (`weightwarden agent --mode system`, root): a protected model
copied by an unprivileged process into places nobody configured raises one model-copy alert each: a
folder of its own, an ext4 stick mounted under /media/USER/LABEL after the agent started, an sshfs share
mounted after the agent started. The config lists none of these places."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import wait_for, write_config
from tests.agent.cli.test_agent_e2e import RunningAgent
from tests.agent.sensors.conftest import require_fanotify
from tests.agent.sensors.test_agent_activity import Agent
from tests.agent.sensors.test_fs_writes import as_nobody, mount_ext4, public, require_fid  # noqa: F401
from tests.agent.sensors.test_mounts import run, sshd  # noqa: F401 - sshd is a fixture used below
from tests.conftest import write_safetensors

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture
def agent(public: Path, tmp_path: Path) -> Iterator[tuple[RunningAgent, Path]]:  # noqa: F811
    require_fid()
    require_fanotify()
    models = public / "models"
    # its own bytes: other test runs on this machine write the usual fixtures, and the marks see them
    model = write_safetensors(models / "llama" / "model.safetensors", rows=1024, seed=secrets.randbelow(2**31))
    for path in (models, model.parent):
        path.chmod(0o755)
    model.chmod(0o644)
    config = write_config(tmp_path / "config.toml", data_dir=tmp_path / "data", protected=[models], watched=[])
    running = Agent(config, dict(os.environ), "--mode", "system")
    try:
        wait_for(lambda: "scan-finished" in running.actions(), timeout=60, what="the initial inventory")
        yield running, model
    finally:
        if running.process.poll() is None:
            assert running.stop() == 0


def copy_as_nobody(model: Path, destination: Path) -> None:
    process = as_nobody("cp", str(model), str(destination))
    assert process.wait(timeout=60) == 0


def copy_alerts(agent: RunningAgent, copy: Path) -> list[dict[str, Any]]:
    return [a for a in agent.records("alerts") if a["rule"] == "model-copy" and str(copy) in a["paths"]]


def one_alert(agent: RunningAgent, copy: Path) -> dict[str, Any]:
    (alert,) = wait_for(lambda: copy_alerts(agent, copy), timeout=15, what=f"the model-copy alert for {copy}")
    assert alert["model"] == "llama"
    return alert


def test_a_copy_into_a_folder_nobody_configured(agent: tuple[RunningAgent, Path], public: Path) -> None:  # noqa: F811
    running, model = agent
    stash = public / "stash" / "deep" / "er"
    stash.mkdir(parents=True)
    for folder in (public / "stash", stash.parent, stash):
        folder.chmod(0o1777)
    copy = stash / "w.bin"
    copy_as_nobody(model, copy)
    one_alert(running, copy)
    assert running.stop() == 0
    assert len(copy_alerts(running, copy)) == 1


@pytest.fixture
def media_label() -> Iterator[Path]:
    """/media/<a user of the test>/<LABEL>, made for the test and removed after it."""
    user = Path("/media") / f"wwtest-{secrets.token_hex(3)}"
    point = user / "STICK"
    try:
        yield point
    finally:
        run("umount", "-l", str(point))
        shutil.rmtree(user, ignore_errors=True)


def test_a_copy_onto_a_stick_mounted_after_start(agent: tuple[RunningAgent, Path], public: Path,  # noqa: F811
                                                 media_label: Path) -> None:
    running, model = agent
    media_label.parent.mkdir(parents=True)
    mount_ext4(public / "stick.img", media_label)
    copy = media_label / "weights.safetensors"
    copy_as_nobody(model, copy)  # at once: before or after the mark, the copy is seen (rescan, or the mark)
    alert = one_alert(running, copy)
    assert alert["destination"]["kind"] == "removable"
    mounted = [e for e in running.records("events") if e["event"]["action"] == "mount-added"
               and e["details"]["mount_point"] == str(media_label)]
    assert mounted and mounted[0]["details"]["kind"] == "removable"


def test_a_copy_into_an_sshfs_share_mounted_after_start(agent: tuple[RunningAgent, Path], public: Path,  # noqa: F811
                                                        sshd: tuple[int, Path]) -> None:  # noqa: F811
    running, model = agent
    port, key = sshd
    remote, point = public / "remote", public / "share"
    remote.mkdir()
    point.mkdir()
    result = run("sshfs", f"root@127.0.0.1:{remote}", str(point), "-p", str(port), "-o",
                 f"IdentityFile={key},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes,"
                 "allow_other")
    if result.returncode != 0:
        pytest.skip(f"sshfs could not mount here: {result.stderr.strip()}")
    try:
        # the share is on the inotify fallback once the agent has taken it: then a copy is seen as it lands
        wait_for(lambda: any(e["event"]["action"] == "sensor-health" and str(point) in e["message"]
                             and "inotify" in e["message"] for e in running.records("events")),
                 timeout=15, what="the share to be handed to inotify")
        copy = point / "weights.safetensors"
        copy_as_nobody(model, copy)
        alert = one_alert(running, copy)
        assert alert["destination"]["kind"] == "network-share"
        assert (remote / "weights.safetensors").read_bytes() == model.read_bytes()
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            running.process.wait(timeout=60)
        run("fusermount3", "-u", str(point))


def test_user_mode_watches_the_whole_home_and_mounts_that_appear(tmp_path: Path) -> None:
    """User mode (no filesystem marks): a copy into a folder of the home nobody listed, and onto a tmpfs
    mounted under /mnt after the agent started, each raise model-copy."""
    home = Path(os.environ["HOME"])  # the test's own home (tests/conftest.py)
    models = tmp_path / "models"
    model = write_safetensors(models / "llama" / "model.safetensors", rows=512, seed=secrets.randbelow(2**31))
    config = write_config(tmp_path / "config.toml", data_dir=tmp_path / "data", protected=[models], watched=[])
    running = Agent(config, dict(os.environ), "--mode", "user")
    point = Path("/mnt") / f"wwtest-{secrets.token_hex(3)}"
    try:
        wait_for(lambda: "scan-finished" in running.actions(), timeout=60, what="the initial inventory")
        stash = home / "stash" / "deep"
        stash.mkdir(parents=True)
        shutil.copyfile(model, stash / "w.bin")
        one_alert(running, stash / "w.bin")
        point.mkdir()
        result = run("mount", "-t", "tmpfs", "-o", "size=8m", "wwtest", str(point))
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        shutil.copyfile(model, point / "w.bin")  # at once: the watch or the rescan once watched sees it
        one_alert(running, point / "w.bin")
    finally:
        if running.process.poll() is None:
            assert running.stop() == 0
        run("umount", "-l", str(point))
        shutil.rmtree(point, ignore_errors=True)


def test_a_copy_into_an_overlay_mounted_after_start_is_one_alert(agent: tuple[RunningAgent, Path],
                                                                 public: Path) -> None:  # noqa: F811
    """An overlay (a container's root, a build sandbox) has no file-id marks: it is watched by inotify
    from the moment it appears, and its upper layer's own writes (on a marked filesystem, under overlay's
    work names) do not make a second alert."""
    running, model = agent
    layers = {name: public / "overlay" / name for name in ("lower", "upper", "work", "merged")}
    for folder in layers.values():
        folder.mkdir(parents=True)
    result = run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={layers['lower']},"
                 f"upperdir={layers['upper']},workdir={layers['work']}", str(layers["merged"]))
    if result.returncode != 0:
        pytest.skip(f"cannot mount an overlay here: {result.stderr.strip()}")
    try:
        layers["merged"].chmod(0o1777)
        wait_for(lambda: any(e["event"]["action"] == "sensor-health" and str(layers["merged"]) in e["message"]
                             and "inotify" in e["message"] for e in running.records("events")),
                 timeout=15, what="the overlay to be handed to inotify")
        copy = layers["merged"] / "weights.bin"
        copy_as_nobody(model, copy)
        one_alert(running, copy)
        assert running.stop() == 0
        overlay = str(public / "overlay") + "/"  # the marks see the whole machine: other tests' copies too
        copies = [a for a in running.records("alerts") if a["rule"] == "model-copy"
                  and a["destination"]["path"].startswith(overlay)]
        assert [a["destination"]["path"] for a in copies] == [str(copy)], copies
    finally:
        run("umount", "-l", str(layers["merged"]))
