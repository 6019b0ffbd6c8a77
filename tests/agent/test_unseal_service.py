"""The agent's unseal service in-process (agent/seal/unseal_service.py): real files, keys, policy files and
/proc; the peer is this test's own process, as SO_PEERCRED would give it. The running-agent tests are in
test_seal_agent.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from weightwarden.agent.access.decide import Decider, Opener
from weightwarden.agent.access.policy import AccessPolicies
from weightwarden.agent.audit.acl import read_acl
from weightwarden.agent.control import Peer
from weightwarden.agent.events import Action, Record
from weightwarden.agent.seal.inplace import seal_file
from weightwarden.agent.seal.keys import machine_public_key
from weightwarden.agent.seal.unseal_service import JOBS_PER_UID, UnsealService, may_read


class Service:
    def __init__(self, tmp_path: Path, policy: str) -> None:
        self.data = tmp_path / "data"
        self.public = machine_public_key(self.data)
        policies = tmp_path / "access.d"
        policies.mkdir()
        (policies / "p.yml").write_text(policy)
        self.records: list[Record] = []
        # agent_pid: not this process, which the decision would always allow as the agent's own
        self.service = UnsealService(str(self.data), Decider(AccessPolicies([str(policies)]), agent_pid=-1),
                                     self.records.append, who=lambda pid: None,
                                     model_name=lambda path, device, inode: None)
        self.me = Peer(os.getpid(), os.geteuid(), os.getegid())

    def sealed(self, path: Path, data: bytes) -> Path:
        path.write_bytes(data)
        seal_file(str(path), [("machine", self.public)])
        return path

    def wait(self, peer: Peer, job: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = self.service.answer(peer, {"op": "unseal", "job": job})
            if reply["done"]:
                return reply
            time.sleep(0.02)
        raise AssertionError("the unseal job never finished")


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def services() -> Iterator[list[UnsealService]]:
    """Every service a test makes is stopped, failed assertions or not (no thread outlives its test)."""
    made: list[UnsealService] = []
    yield made
    for service in made:
        service.stop()


@pytest.fixture
def allowing(tmp_path: Path, services: list[UnsealService]) -> Service:
    made = Service(tmp_path, f"id: all-bins\napplies_to:\n  paths: ['{tmp_path}/*']\nmode: enforce\n"
                             f"allow:\n  - users: [{_me()}]\n    access: read-write\n")
    services.append(made.service)
    return made


def test_an_allowed_unseal_is_a_job_with_its_outcome_and_a_record(allowing: Service, tmp_path: Path) -> None:
    path = allowing.sealed(tmp_path / "m.bin", b"weights" * 1000)
    started = allowing.service.answer(allowing.me, {"op": "unseal", "path": str(path)})
    assert started["ok"] and not started["done"]
    done = allowing.wait(allowing.me, started["job"])
    assert done["ok"] and done["size"] == 7000 and "allow[0] of all-bins" in done["decision"]
    assert path.read_bytes() == b"weights" * 1000
    (record,) = allowing.records
    assert record.kind == "event" and record.action == Action.MODEL_UNSEALED  # type: ignore[union-attr]
    assert allowing.service.answer(allowing.me, {"op": "unseal", "job": started["job"]})["error"].startswith(
        "no unseal job")  # an outcome is given once
    allowing.service.stop()


def test_a_job_is_only_its_callers_and_each_user_has_a_cap(allowing: Service, tmp_path: Path) -> None:
    paths = [allowing.sealed(tmp_path / f"m{n}.bin", bytes([n]) * 5000) for n in range(JOBS_PER_UID + 1)]
    jobs = [allowing.service.answer(allowing.me, {"op": "unseal", "path": str(p)}) for p in paths]
    assert all(job["ok"] for job in jobs[:JOBS_PER_UID])
    assert not jobs[-1]["ok"] and f"at most {JOBS_PER_UID} unseals per user" in jobs[-1]["error"]
    stranger = Peer(os.getpid(), os.geteuid() + 4242, 0)
    reply = allowing.service.answer(stranger, {"op": "unseal", "job": jobs[0]["job"]})
    assert not reply["ok"] and "no unseal job" in reply["error"]
    # nor can anyone claim to be another uid than the process the kernel named
    assert "could not identify" in allowing.service.answer(stranger, {"op": "unseal", "path": str(paths[-1])})["error"]
    for job in jobs[:JOBS_PER_UID]:
        assert allowing.wait(allowing.me, job["job"])["ok"]
    allowing.service.stop()


def test_refused_by_the_policy_the_file_stays_sealed_and_the_refusal_is_recorded(
        tmp_path: Path, services: list[UnsealService]) -> None:
    refusing = Service(tmp_path, f"id: nobody-else\napplies_to:\n  paths: ['{tmp_path}/*']\nmode: monitor\n"
                                 "allow:\n  - users: [someone-else]\n    access: read-write\n")
    services.append(refusing.service)
    path = refusing.sealed(tmp_path / "m.bin", b"secret" * 100)
    sealed = path.read_bytes()
    started = refusing.service.answer(refusing.me, {"op": "unseal", "path": str(path)})
    done = refusing.wait(refusing.me, started["job"])
    # monitor mode lets opens through; an unseal still needs the policy's allow
    assert not done["ok"] and done["refused"] and "the access policy does not allow" in done["error"]
    assert path.read_bytes() == sealed
    (record,) = refusing.records
    assert record.action == Action.UNSEAL_REFUSED  # type: ignore[union-attr]
    assert record.details["unseal"]["decision"]["policy"] == "nobody-else"  # type: ignore[union-attr]
    refusing.service.stop()


def test_a_symlinked_folder_does_not_dodge_a_policy_on_the_model_s_path(tmp_path: Path,
                                                                       services: list[UnsealService]) -> None:
    guarded = tmp_path / "guarded"
    guarded.mkdir()
    refusing = Service(tmp_path, f"id: guarded\napplies_to:\n  paths: ['{guarded}/*']\nmode: enforce\n"
                                 "allow:\n  - users: [someone-else]\n    access: read-write\n")
    services.append(refusing.service)
    path = refusing.sealed(guarded / "m.bin", b"secret" * 100)
    sealed = path.read_bytes()
    (tmp_path / "innocent").symlink_to(guarded)
    started = refusing.service.answer(refusing.me, {"op": "unseal", "path": str(tmp_path / "innocent" / "m.bin")})
    done = refusing.wait(refusing.me, started["job"])
    assert not done["ok"] and done["refused"] and "guarded" in done["error"]
    assert path.read_bytes() == sealed
    (record,) = refusing.records
    assert record.file is not None and record.file.path == str(path)  # type: ignore[union-attr]
    refusing.service.stop()


@pytest.mark.parametrize(("mode", "owner", "group", "uid", "gids", "readable"), [
    (0o600, 1000, 1000, 1000, (1000,), True),
    (0o600, 1000, 1000, 1001, (1000,), False),
    (0o640, 1000, 50, 1001, (50,), True),
    (0o604, 1000, 50, 1001, (60,), True),
    (0o060, 1000, 50, 1000, (50,), False),  # the owner's bits decide for the owner
    (0o000, 1000, 50, 0, (0,), True),
])
def test_may_read_follows_owner_group_and_mode(mode: int, owner: int, group: int, uid: int,
                                               gids: tuple[int, ...], readable: bool) -> None:
    info = os.stat_result((0o100000 | mode, 1, 1, 1, owner, group, 10, 0, 0, 0))
    assert may_read(info, Opener(pid=1, start_ticks=None, uid=uid, gids=gids)) is readable


def test_may_read_follows_the_access_acl_as_the_kernel_does(tmp_path: Path) -> None:
    """A file shared with one user through a named ACL entry may be unsealed by that user, and an entry the
    mask takes back shares nothing (read from the file's own attribute by its descriptor)."""
    if shutil.which("setfacl") is None:
        pytest.skip("setfacl is not installed (Debian package acl)")
    path = tmp_path / "shared.bin"
    path.write_bytes(b"x")
    os.chmod(path, 0o600)
    os.chown(path, 1000, 1000)
    subprocess.run(["setfacl", "-m", "u:1001:r", str(path)], check=True)
    stranger = Opener(pid=1, start_ticks=None, uid=1002, gids=(1002,))
    named = Opener(pid=1, start_ticks=None, uid=1001, gids=(1001,))
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        assert not may_read(info, named)  # the mode bits alone share nothing
        assert may_read(info, named, read_acl(fd, info.st_mode))
        assert not may_read(info, stranger, read_acl(fd, info.st_mode))
        subprocess.run(["setfacl", "-m", "m::-", str(path)], check=True)
        info = os.fstat(fd)
        assert not may_read(info, named, read_acl(fd, info.st_mode))
    finally:
        os.close(fd)


def test_stopping_abandons_a_long_unseal_and_leaves_the_file_sealed(allowing: Service, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(64 << 20))
    seal_file(str(path), [("machine", allowing.public)], chunk_size=1 << 16)
    sealed = path.read_bytes()
    started = allowing.service.answer(allowing.me, {"op": "unseal", "path": str(path)})
    deadline = time.monotonic() + 10
    while not [n for n in os.listdir(tmp_path) if n.startswith(".wwseal-")] and time.monotonic() < deadline:
        time.sleep(0.005)  # until the unseal is under way (its temporary file exists)
    allowing.service.stop()
    done = allowing.service.answer(allowing.me, {"op": "unseal", "job": started["job"]})
    assert not done["ok"] and "the agent is stopping; left sealed" in done["error"]
    assert path.read_bytes() == sealed
    assert [n for n in os.listdir(tmp_path) if n.startswith(".wwseal-")] == []
    assert allowing.records == [] and os.listdir(allowing.service.journal) == []


def test_a_crash_s_leftover_is_removed_at_the_next_start(allowing: Service, tmp_path: Path,
                                                       services: list[UnsealService]) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    stale = folder / ".wwseal-0123456789abcdef.tmp"
    stale.write_bytes(b"plaintext so far")
    os.makedirs(allowing.service.journal, exist_ok=True)
    (Path(allowing.service.journal) / "entry").write_bytes(os.fsencode(folder))
    allowing.service.stop()
    again = UnsealService(str(allowing.data), allowing.service.decider, allowing.records.append,
                          who=lambda pid: None, model_name=lambda path, device, inode: None)
    services.append(again)
    assert again.cleaned == [str(stale)] and not stale.exists() and os.listdir(again.journal) == []
    again.stop()
