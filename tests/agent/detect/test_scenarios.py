"""Real exfiltration against the running agent (root): real tools on real files, each in its own session
(process tree), and the alert each one must raise. Prints the matrix scenario -> rule, severity, latency.

One agent serves every scenario (starting it is the slow part); scenarios are independent because each
runs in a new session. Network scenarios reach an sshd and listeners in a network namespace pair the
module creates (scenario_world.Remote). Benign work (a safetensors load that stays open, pip install,
git status in a big repository, an allowlisted backup) must raise nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import wait_for
from tests.agent.detect.scenario_world import (
    SERVER_ADDRESS,
    SSH_PORT,
    UPLOAD,
    Remote,
    Upload,
    scenario_config,
    usb_stick,
)
from tests.agent.sensors.conftest import PYTHON, require_fanotify, require_proc_connector
from tests.agent.sensors.test_agent_activity import Agent
from tests.conftest import write_safetensors
from weightwarden.agent import canary
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.replay import event_from
from weightwarden.agent.detect.rules import load_rules
from weightwarden.agent.events import Event, parse_time
from weightwarden.agent.sensors.mounts import path_kind
from weightwarden.agent.store import Store
from weightwarden.agent.store.store import StoreError

pytestmark = [pytest.mark.e2e, pytest.mark.root]

MATRIX: list[tuple[str, str, int, float]] = []
COPY_SEVERITY = {"removable": 9, "network-share": 7, "cloud-sync": 8, "disk-image": 7, "temporary": 6, "local": 5}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("the scenarios run the agent in system mode, as root")
    require_fanotify()
    require_proc_connector()
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    root = tmp_path_factory.mktemp("scenarios")
    paths = {name: root / name for name in ("models", "out", "data", "remote_home", "backup", "work")}
    for path in paths.values():
        path.mkdir()
    model = write_safetensors(paths["models"] / "llama" / "model.safetensors", rows=12000, seed=7)
    decoy = canary.plant(str(paths["models"] / "internal-13b"), str(paths["data"]))
    shared = paths["models"] / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # a posture finding: anyone can replace a model here
    write_safetensors(shared / "adapter.safetensors", seed=8)
    backup_tool = paths["work"] / "backup-bin" / "rsync"  # the organisation's backup job, allowlisted by path
    if shutil.which("rsync"):
        backup_tool.parent.mkdir()
        shutil.copy2(shutil.which("rsync") or "", backup_tool)
    remote = Remote(paths["remote_home"])
    try:
        remote.start()
    except (subprocess.CalledProcessError, RuntimeError) as error:
        remote.stop()
        pytest.skip(f"cannot create the network namespaces and sshd: {error}")
    try:
        with usb_stick(root / "usb.img") as usb:
            config = scenario_config(root / "config.toml", data=paths["data"], models=paths["models"],
                                     watched=[paths["out"], usb], allow_processes=[str(backup_tool)])
            agent = Agent(config, dict(os.environ))
            try:
                wait_for(lambda: "scan-finished" in agent.actions(), timeout=60, what="the initial inventory")
                wait_for(lambda: _marked(agent, 3), timeout=30, what="the models to be inventoried")
                # and their fanotify marks in place: an open before that is not seen at all
                wait_for(lambda: _access_marks(paths["data"] / "weightwarden.db") >= 3, timeout=30,
                         what="the access sensor to mark the three models")
                yield {"agent": agent, "model": model, "canary": Path(decoy.path), "usb": usb, "remote": remote,
                       "backup_tool": backup_tool, "database": paths["data"] / "weightwarden.db", **paths}
            finally:
                if agent.process.poll() is None:
                    agent.stop(signal.SIGKILL)
    finally:
        remote.stop()
        print("\nscenario -> alert (rule, severity, latency from the end of the action to the stored alert)")
        for scenario, rule, severity, latency in MATRIX:
            print(f"  {scenario:34} {rule:34} {severity:>2}  {latency * 1000:7.0f} ms")


def _marked(agent: Agent, count: int) -> bool:
    discovered = [e for e in agent.records("events") if e["event"]["action"] in ("model-discovered",
                                                                                   "model-created")]
    return len(discovered) >= count


def _access_marks(database: Path) -> int:
    """How many files the access sensor says it has marked, from the status the agent stores."""
    try:
        store = Store(database, read_only=True)
    except StoreError:
        return 0  # not created or not migrated yet
    try:
        raw = store.state("status")
    finally:
        store.close()
    for sensor in json.loads(raw)["sensors"] if raw else []:
        found = re.search(r"(\d+) files marked", sensor.get("message") or "")
        if sensor.get("name") == "access" and found:
            return int(found.group(1))
    return 0


def alerts(world: dict[str, Any], *, every_update: bool = False) -> list[dict[str, Any]]:
    """The stored alerts, read straight from the agent's database (read-only): one per incident."""
    store = Store(world["database"], read_only=True)
    try:
        return store.review.latest_records(every_update=every_update)
    finally:
        store.close()


def events(world: dict[str, Any]) -> list[dict[str, Any]]:
    store = Store(world["database"], read_only=True)
    try:
        return store.events()
    finally:
        store.close()


def _run(*argv: str, **kwargs: Any) -> float:
    """Run one tool in its own session; the time it ended."""
    subprocess.run(argv, check=True, capture_output=True, timeout=60, start_new_session=True, **kwargs)
    return time.time()


def _expect(world: dict[str, Any], scenario: str, rule: str, ended: float,
            match: Callable[[dict[str, Any]], bool] = lambda a: True) -> dict[str, Any]:
    (alert, *_) = wait_for(lambda: [a for a in alerts(world) if a["rule"] == rule and match(a)],
                           timeout=30, what=f"{rule} for {scenario}")
    # The first stored state of the incident: when the user could first see it.
    first = min((a for a in alerts(world, every_update=True) if a["incident"] == alert["incident"]),
                key=lambda a: a["time"])
    latency = max(0.0, parse_time(first["time"]).timestamp() - ended)
    kind = (alert.get("destination") or {}).get("kind")
    MATRIX.append((scenario, f"{rule} ({kind})" if rule == "model-copy" else rule, alert["severity"], latency))
    return alert


def _copied_to(path: Path) -> Callable[[dict[str, Any]], bool]:
    return lambda a: bool(a.get("destination")) and a["destination"].get("path") == str(path)


# ---------------------------------------------------------------------- posture, canary, copies


def test_posture_finding_for_a_world_writable_folder(world: dict[str, Any]) -> None:
    found = [e for e in events(world) if e["event"]["action"] == "posture-finding"]
    assert [(Path(e["file"]["path"]).name, e["details"]["finding"]) for e in found] == [
        ("adapter.safetensors", "model-in-world-writable-folder")]


def test_canary_opened_with_head(world: dict[str, Any]) -> None:
    ended = _run("head", "-c", "100", str(world["canary"]))
    alert = _expect(world, "head -c canary", "canary-model-accessed", ended)
    assert alert["severity"] == 10 and alert["process"]["name"] == "head"


def test_cp_to_a_temporary_folder(world: dict[str, Any]) -> None:
    target = world["out"] / "copy.safetensors"
    ended = _run("cp", str(world["model"]), str(target))
    alert = _expect(world, "cp to /tmp", "model-copy", ended, _copied_to(target))
    assert alert["severity"] == 6 and alert["destination"]["kind"] == "temporary"


def test_cp_to_the_usb_stick(world: dict[str, Any]) -> None:
    target = world["usb"] / "llama.safetensors"
    ended = _run("cp", str(world["model"]), str(target))
    alert = _expect(world, "cp to USB stick (loop ext4)", "model-copy", ended, _copied_to(target))
    # The stand-in is a loop device mounted under /media, where the desktop (udisks) mounts what a user
    # attaches: agent/sensors/mounts.py calls that removable media, as it would a real stick there.
    kind = path_kind(str(target))
    assert kind == "removable" and alert["destination"]["kind"] == kind and alert["severity"] == COPY_SEVERITY[kind]
    assert alert["model"] == "llama"


def test_mv_to_the_usb_stick(world: dict[str, Any]) -> None:
    staged = world["out"] / "moving.safetensors"
    shutil.copyfile(world["model"], staged)
    wait_for(lambda: [a for a in alerts(world) if _copied_to(staged)(a)], timeout=30, what="the staged copy")
    target = world["usb"] / "moved.safetensors"
    ended = _run("mv", str(staged), str(target))  # another filesystem: mv copies, then deletes
    alert = _expect(world, "mv to USB stick (loop ext4)", "model-copy", ended, _copied_to(target))
    kind = path_kind(str(target))
    assert kind == "removable" and alert["destination"]["kind"] == kind and alert["severity"] == COPY_SEVERITY[kind]
    assert not staged.exists()


def test_cp_into_a_dropbox_folder(world: dict[str, Any]) -> None:
    folder = world["out"] / "Dropbox" / "papers"
    folder.mkdir(parents=True)
    target = folder / "llama.safetensors"
    ended = _run("cp", str(world["model"]), str(target))
    alert = _expect(world, "cp into Dropbox folder", "model-copy", ended, _copied_to(target))
    assert alert["destination"]["kind"] == "cloud-sync" and alert["severity"] == 8


CONVERT = textwrap.dedent("""
    import sys
    import numpy as np
    from safetensors.numpy import load_file
    np.savez(sys.argv[2], **load_file(sys.argv[1]))
""")


def test_conversion_to_npz_then_copy(world: dict[str, Any]) -> None:
    converted = world["work"] / "llama.npz"  # converted where nobody watches, then copied where we do
    _run(PYTHON, "-c", CONVERT, str(world["model"]), str(converted))
    target = world["out"] / "weights.npz"
    ended = _run("cp", str(converted), str(target))
    alert = _expect(world, "convert to npz, then cp", "model-copy", ended, _copied_to(target))
    assert alert["model"] == "llama" and alert["evidence"].get("derived_from", {}).get("model", "llama") == "llama"


# ---------------------------------------------------------------------- staging


def test_tar_czf_of_the_model_folder(world: dict[str, Any]) -> None:
    archive = world["out"] / "llama.tgz"
    ended = _run("tar", "czf", str(archive), "-C", str(world["models"]), "llama")
    alert = _expect(world, "tar czf", "model-staged-in-archive", ended)
    assert alert["evidence"]["lineage"] == {"read": str(world["model"]), "wrote": str(archive)}


def test_zip_r_of_the_model_folder(world: dict[str, Any]) -> None:
    if shutil.which("zip") is None:
        pytest.skip("zip is not installed")
    archive = world["out"] / "llama.zip"
    ended = _run("zip", "-q", "-r", str(archive), "llama", cwd=str(world["models"]))
    alert = _expect(world, "zip -r", "model-staged-in-archive", ended,
                    lambda a: a["evidence"]["staging"]["tool"] == "zip")
    assert alert["evidence"]["staging"]["output"] == str(archive)


def test_gpg_symmetric(world: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    out = world["out"] / "llama.gpg"
    try:
        ended = _run("gpg", "--homedir", str(tmp_path), "--batch", "--pinentry-mode", "loopback", "--passphrase",
                     "x", "--symmetric", "-o", str(out), str(world["model"]))
    finally:  # gpg leaves its agent daemon running for the home folder: stop it with the test
        if shutil.which("gpgconf"):
            subprocess.run(["gpgconf", "--homedir", str(tmp_path), "--kill", "gpg-agent"], check=False,
                           capture_output=True, timeout=30)
    alert = _expect(world, "gpg --symmetric", "model-staged-in-archive", ended,
                    lambda a: a["evidence"]["staging"]["tool"] == "gpg")
    assert alert["evidence"]["staging"]["output"] == str(out)


def test_split(world: dict[str, Any]) -> None:
    ended = _run("split", "-b", "1M", str(world["model"]), str(world["out"] / "part."))
    alert = _expect(world, "split -b 1M", "model-staged-in-archive", ended,
                    lambda a: a["evidence"]["staging"]["tool"] == "split")
    assert alert["evidence"]["staging"]["operation"] == "split"


# ---------------------------------------------------------------------- transfer tools (remote namespace)


def _ssh_tools(world: dict[str, Any]) -> Remote:
    remote: Remote = world["remote"]
    if remote.sshd is None or shutil.which("scp") is None:
        pytest.skip("openssh-server / openssh-client are not installed")
    return remote


def test_scp_to_an_sshd_in_another_namespace(world: dict[str, Any]) -> None:
    remote = _ssh_tools(world)
    ended = _run(*remote.in_client("scp", *remote.ssh_options(), "-P", str(SSH_PORT), str(world["model"]),
                                   f"root@{SERVER_ADDRESS}:{remote.inbox}/scp.safetensors"))
    alert = _expect(world, "scp (netns sshd)", "transfer-tool-sent-model", ended,
                    lambda a: a["evidence"]["transfer"]["tool"] == "scp")
    assert alert["evidence"]["transfer"]["host"] == SERVER_ADDRESS
    assert (remote.inbox / "scp.safetensors").stat().st_size == world["model"].stat().st_size


def test_rsync_over_ssh_to_another_namespace(world: dict[str, Any]) -> None:
    remote = _ssh_tools(world)
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed")
    shell = " ".join(["ssh", "-p", str(SSH_PORT), *remote.ssh_options()])
    ended = _run(*remote.in_client("rsync", "-a", "-e", shell, str(world["model"].parent) + "/",
                                   f"root@{SERVER_ADDRESS}:{remote.inbox}/rsync/"))
    alert = _expect(world, "rsync -e ssh (netns sshd)", "transfer-tool-sent-model", ended,
                    lambda a: a["evidence"]["transfer"]["tool"] == "rsync")
    assert alert["evidence"]["transfer"]["host"] == SERVER_ADDRESS
    assert (remote.inbox / "rsync" / "model.safetensors").exists()


def test_rclone_to_a_local_remote(world: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed")
    config = tmp_path / "rclone.conf"
    config.write_text("[vault]\ntype = local\n")
    ended = _run("rclone", "--config", str(config), "copy", str(world["model"].parent), f"vault:{tmp_path / 'dest'}")
    alert = _expect(world, "rclone copy to local remote", "transfer-tool-sent-model", ended,
                    lambda a: a["evidence"]["transfer"]["tool"] == "rclone")
    assert alert["evidence"]["transfer"]["host"] == "vault"
    assert (tmp_path / "dest" / "model.safetensors").exists()


# ---------------------------------------------------------------------- network egress (remote namespace)

def _seen(world: dict[str, Any], upload: Upload, sent: int) -> list[dict[str, Any]]:
    """The agent's connection events of the uploader that count at least `sent` bytes (a connection that
    opens and closes between two network polls is never seen: uploads here stay open until told)."""
    return [e for e in events(world) if e["event"]["action"] == "network-connection" and e["process"]
            and e["process"]["pid"] == upload.uploader.pid and (e["details"].get("bytes_sent") or 0) >= sent]


def _egress(world: dict[str, Any], pid: int) -> list[dict[str, Any]]:
    return [a for a in alerts(world) if a["rule"] == "model-egress-budget" and a["process"]
            and a["process"]["pid"] == pid]


def test_python_upload_to_another_namespace(world: dict[str, Any]) -> None:
    upload = Upload(world["remote"], world["model"], 9099, [1.0])
    try:
        sent = upload.step()
        ended = time.time()
        wait_for(lambda: _seen(world, upload, sent), timeout=30, what="the upload's connection with its bytes")
        upload.finish()
        alert = _expect(world, "python upload (netns)", "model-egress-budget", ended,
                        lambda a: a["process"]["pid"] == upload.uploader.pid)
        assert alert["destination"]["address"] == SERVER_ADDRESS
        assert alert["evidence"]["progress"] >= 0.5 and alert["evidence"]["models"] == ["llama"]
    finally:
        upload.close()


def test_egress_alert_shows_progress_while_the_upload_runs(world: dict[str, Any]) -> None:
    """The alert appears at half the model and is updated at three quarters, before the upload ends."""
    upload = Upload(world["remote"], world["model"], 9098, [0.3, 0.6, 0.8, 1.0])
    size = world["model"].stat().st_size
    try:
        upload.step()  # 30%: under the budget, nothing yet
        upload.step()  # 60%
        first = wait_for(lambda: _egress(world, upload.uploader.pid), timeout=30, what="the egress alert at 60%")[0]
        assert 0.5 <= first["evidence"]["progress"] < 0.75 and first["evidence"]["model_bytes"] == size
        upload.step()  # 80%: the next quarter, while the connection is still open
        updated = wait_for(lambda: [a for a in _egress(world, upload.uploader.pid)
                                    if a["evidence"]["progress"] >= 0.75], timeout=30, what="the update at 80%")[0]
        assert upload.uploader.poll() is None, "the transfer must still be running"
        assert updated["incident"] == first["incident"] and updated["updates"] >= 1
        assert updated["evidence"]["progress"] < 1.0 and f"of {size} model bytes sent" in updated["message"]
        upload.step()
        ended = time.time()
        done = wait_for(lambda: [a for a in _egress(world, upload.uploader.pid) if a["evidence"]["progress"] >= 1.0],
                        timeout=30, what="the update at 100%")[0]
        upload.finish()
        MATRIX.append(("slow upload: update at 100%", done["rule"], done["severity"],
                       max(0.0, parse_time(done["time"]).timestamp() - ended)))
        states = [a for a in alerts(world, every_update=True) if a["incident"] == first["incident"]]
        assert len([a for a in alerts(world) if a["incident"] == first["incident"]]) == 1  # one alert shown
        assert [a["updates"] for a in states] == list(range(len(states))) and len(states) >= 3
    finally:
        upload.close()


def test_archive_then_upload_is_the_staged_then_sent_sequence(world: dict[str, Any]) -> None:
    remote: Remote = world["remote"]
    archive = world["work"] / "llama-seq.tgz"
    script = (f"tar czf {archive} -C {world['models']} llama && "
              f"{PYTHON} -c '{UPLOAD}' {archive} {SERVER_ADDRESS} 9097 1.0")
    upload = Upload(remote, archive, 9097, [1.0], argv=["bash", "-c", script])
    try:
        upload.step()
        ended = time.time()
        alert = _expect(world, "tar czf, then upload (sequence)", "staged-model-sent", ended)
        assert [s["step"] for s in alert["evidence"]["sequence"]] == ["staged", "sent"]
        assert alert["destination"]["address"] == SERVER_ADDRESS and alert["severity"] == 9
        upload.finish()
    finally:
        upload.close()


# ---------------------------------------------------------------------- benign work: zero alerts

BENIGN = textwrap.dedent("""
    import sys, time
    from safetensors.numpy import load_file
    tensors = load_file(sys.argv[1])
    print(sum(t.size for t in tensors.values()), flush=True)
    sys.stdin.readline()
""")


def _wheel(folder: Path, modules: int = 300) -> Path:
    """A small real wheel (zip + dist-info, as PEP 427 has it), many modules: a burst of files to install."""
    path = folder / "acme_utils-1.0-py3-none-any.whl"
    info = "acme_utils-1.0.dist-info"
    files = {f"acme_utils/m{i}.py": f"VALUE = {i}\n" for i in range(modules)}
    files["acme_utils/__init__.py"] = ""
    files[f"{info}/METADATA"] = "Metadata-Version: 2.1\nName: acme-utils\nVersion: 1.0\n"
    files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def _without_allowlist(recorded: list[dict[str, Any]]) -> list[str]:
    """The rules the recorded events would fire under the default policy, with no [detect] allowlist."""
    engine = DetectionEngine(load_rules())
    fired = []
    for record in recorded:
        process = record["process"]
        item = event_from({"action": record["event"]["action"], "path": record["file"]["path"],
                           "model": record["model"], "size": record["file"].get("size"),
                           "process": {"pid": process["pid"], "name": process["name"], "exe": process["executable"],
                                       "cmd": process.get("command_line"), "session": process.get("session_id")}})
        assert isinstance(item, Event)
        fired += [alert.rule_id for alert in engine.process(item)]
    return fired


def test_benign_workload_raises_nothing(world: dict[str, Any], tmp_path: Path) -> None:
    before = {a["id"] for a in alerts(world, every_update=True)}
    known_incidents = {a["incident"] for a in alerts(world, every_update=True)}
    started = time.time()
    # 1. A process loads the model with safetensors and keeps running a while.
    loader = subprocess.Popen([sys.executable, "-c", BENIGN, str(world["model"])], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert loader.stdout is not None and int(loader.stdout.readline()) > 0
        wait_for(lambda: [e for e in events(world) if e["event"]["action"] in ("model-read", "model-held",
                                                                                "model-opened")
                          and e["process"] and e["process"]["pid"] == loader.pid],
                 timeout=30, what="the loader's access to be recorded")
        # 2. pip installs a local wheel into a target folder the agent watches.
        _run(sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--disable-pip-version-check",
             "--target", str(world["out"] / "site"), str(_wheel(tmp_path)))
        # 3. git status in a repository of a few thousand files.
        repo = world["out"] / "repo"
        for folder in range(30):
            (repo / f"pkg{folder}").mkdir(parents=True)
            for index in range(100):
                (repo / f"pkg{folder}" / f"f{index}.py").write_text(f"x = {index}\n")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(repo)]
        _run(*git, "init", "-q")
        _run(*git, "add", "-A")
        _run(*git, "commit", "-q", "-m", "many files")
        (repo / "pkg0" / "f0.py").write_text("x = 'changed'\n")
        _run(*git, "status", "--porcelain")
        # 4. The allowlisted backup job copies the model folder (rsync from the allowlisted path).
        if world["backup_tool"].exists():
            _run(str(world["backup_tool"]), "-a", str(world["model"].parent) + "/", str(world["backup"]) + "/")
            assert (world["backup"] / "model.safetensors").exists()
    finally:
        assert loader.stdin is not None
        loader.stdin.write("\n")
        loader.stdin.close()
        loader.wait(timeout=10)
        assert loader.stdout is not None
        loader.stdout.close()
    # A barrier: a new, unrelated model in a watched folder is examined after the burst of files above.
    sentinel = write_safetensors(world["out"] / "sentinel" / "fresh.safetensors", seed=99)
    wait_for(lambda: [e for e in events(world) if e.get("file") and e["file"]["path"] == str(sentinel)],
             timeout=30, what="the sentinel model to be examined")
    if world["backup_tool"].exists():
        backup = wait_for(lambda: [e for e in events(world) if e["process"] and e["process"].get("executable")
                                   == str(world["backup_tool"]) and e.get("model")],
                          timeout=30, what="the backup's reads to be recorded")
        assert "unknown-binary-opened-model" in _without_allowlist(backup)  # so the allowlist is what kept it quiet
    new = [a for a in alerts(world, every_update=True) if a["id"] not in before
           and a["incident"] not in known_incidents]  # updates of earlier scenarios' incidents are theirs
    assert new == [], json.dumps(new, indent=1)[:4000]
    MATRIX.append(("benign workload", "(no alert)", 0, time.time() - started))
