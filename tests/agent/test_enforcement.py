"""Acceptance (issue 17): the access policy enforced on real opens by real users, and unsealing decided by
it, the agent run as installed.

Two local users (ana, bo) are made for the test; the agent runs as the unit runs it (system mode, root, no
HOME, no config file). An administrator's policy is written where admins put them (/etc/weightwarden/
access.d/, a file of the test's own, removed after it). The models are readable by everyone on disk, so
nothing but the agent's answer keeps bo out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.cli.helpers import WEIGHTWARDEN
from tests.agent.test_installed_scope import InstalledAgent, Person, owned_model, people  # noqa: F401
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

POLICY_DIR = Path("/etc/weightwarden/access.d")
CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")
PYTHON = os.path.realpath("/usr/bin/python3")
# What each model holds, read before the policy is in force: once it is, root (the test) is refused too.
_CONTENT: dict[Path, bytes] = {}


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _open_to_all(person: Person, model: Path) -> None:
    """Everyone may read the model on disk (0644, folders 0755): only the policy decides."""
    model.chmod(0o644)
    for part in model.parents:
        part.chmod(0o755)
        if part == person.home:
            break


def _policy(ana: Person, enforced: Path, monitored: Path) -> str:
    return f"""\
id: test-enforced-{ana.name}
applies_to:
  paths: ["{enforced.parent}/**"]
mode: enforce
allow:
  - users: [{ana.name}]
    programs:
      - {{executable: {CAT}, sha256: {_sha256(CAT)}}}
      - {{executable: {PYTHON}}}
    access: read
---
id: test-sealed-{ana.name}
applies_to:
  paths: ["{enforced.parent.parent}/sealed/**"]
mode: enforce
allow:
  - users: [{ana.name}, root]
    access: read-write
---
id: test-monitored-{ana.name}
applies_to:
  paths: ["{monitored.parent}/**"]
mode: monitor
allow:
  - users: [{ana.name}]
"""


@pytest.fixture(scope="module")
def enforced(people: tuple[Person, Person], tmp_path_factory: pytest.TempPathFactory  # noqa: F811
             ) -> Iterator[tuple[InstalledAgent, Path, Path]]:
    ana, _ = people
    locked = owned_model(ana, "models/locked/model.safetensors", seed=71)
    watched = owned_model(ana, "models/watched/model.safetensors", seed=72)
    for model in (locked, watched):
        _open_to_all(ana, model)
        _CONTENT[model] = model.read_bytes()
    POLICY_DIR.mkdir(parents=True, exist_ok=True)
    policy_file = POLICY_DIR / f"90-test-{ana.name}.yml"
    policy_file.write_text(_policy(ana, locked, watched))
    sealed = owned_model(ana, "models/sealed/model.safetensors", seed=74)
    _open_to_all(ana, sealed)
    _CONTENT[sealed] = sealed.read_bytes()
    # The data dir moved out of /var/lib (WEIGHTWARDEN_DATA_DIR) where users can reach its socket, as they
    # reach /run/weightwarden's on an installed machine.
    base = Path(tempfile.mkdtemp(prefix="ww-enforced-", dir="/var/tmp"))
    base.chmod(0o711)
    data = base / "data"
    data.mkdir(mode=0o711)
    agent = InstalledAgent(data)
    try:
        def marked() -> bool:
            paths = {p for m in agent.models() for p in m.get("paths", [])}
            return {str(locked), str(watched)} <= paths

        wait_for(marked, timeout=120, what="both models inventoried (hashed by the agent under the policy)")
        # inventoried is marked within the activity monitor's next pass: bo's open is refused once it is
        wait_for(lambda: _denied_open(people[1], locked), timeout=15, what="the policy in force")
        yield agent, locked, watched
    finally:
        policy_file.unlink(missing_ok=True)
        try:
            assert agent.stop() == 0
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _denied_open(person: Person, model: Path) -> bool:
    result = person.run(CAT, str(model), check=False)
    return result.returncode != 0 and b"Operation not permitted" in result.stderr


def _events(agent: InstalledAgent, action: str) -> list[dict[str, Any]]:
    return [e for e in agent.json_lines("events", "--limit", "2000") if e.get("event", {}).get("action") == action
            or e.get("action") == action]


def _decisions(agent: InstalledAgent, action: str, user: str, path: Path) -> list[dict[str, Any]]:
    found = []
    for event in _events(agent, action):
        process = event.get("process") or {}
        file = event.get("file") or {}
        if process.get("user") == user and file.get("path") == str(path):
            found.append(event)
    return found


def test_the_allowed_user_and_program_read_the_model(enforced: tuple[InstalledAgent, Path, Path],
                                                    people: tuple[Person, Person]) -> None:  # noqa: F811
    _, locked, _ = enforced
    ana, _ = people
    result = ana.run(CAT, str(locked))
    assert result.stdout == _CONTENT[locked]


def test_another_user_is_refused_with_eperm_and_it_is_recorded(enforced: tuple[InstalledAgent, Path, Path],
                                                              people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, locked, _ = enforced
    _, bo = people
    result = bo.run(CAT, str(locked), check=False)
    assert result.returncode != 0 and b"Operation not permitted" in result.stderr, result
    (event, *_) = wait_for(lambda: _decisions(agent, "access-denied", bo.name, locked), timeout=30,
                           what="bo's refused open recorded")
    decision = event["details"]["decision"]
    assert decision["enforced"] is True and decision["allowed"] is False
    assert decision["policy"].startswith("test-enforced-") and decision["access"] == "read"
    alerts = wait_for(lambda: [a for a in agent.json_lines("alerts") if a["rule"] == "access-denied"],
                      timeout=30, what="the access-denied alert")
    assert any((a.get("process") or {}).get("user") == bo.name for a in alerts)


def test_the_allowed_program_copied_and_renamed_is_refused(enforced: tuple[InstalledAgent, Path, Path],
                                                          people: tuple[Person, Person]) -> None:  # noqa: F811
    _, locked, _ = enforced
    ana, _ = people
    bin_dir = ana.home / "bin"
    ana.run("mkdir", "-p", str(bin_dir))
    ana.run("cp", CAT, str(bin_dir / "peek"))
    result = ana.run(str(bin_dir / "peek"), str(locked), check=False)
    assert result.returncode != 0 and b"Operation not permitted" in result.stderr, result
    assert ana.run(CAT, str(locked)).stdout == _CONTENT[locked]  # the same bytes at the allowed path pass


def test_a_write_open_is_refused_where_only_reading_is_allowed(enforced: tuple[InstalledAgent, Path, Path],
                                                              people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, locked, _ = enforced
    ana, _ = people
    before = _CONTENT[locked]
    read = ana.run(PYTHON, "-c", f"import sys; sys.stdout.buffer.write(open({str(locked)!r}, 'rb').read())")
    assert read.stdout == before
    write = ana.run(PYTHON, "-c", f"open({str(locked)!r}, 'r+b').write(b'x')", check=False)
    assert write.returncode != 0 and b"PermissionError" in write.stderr, write
    assert ana.run(CAT, str(locked)).stdout == before  # unchanged
    (event, *_) = wait_for(lambda: [e for e in _decisions(agent, "access-denied", ana.name, locked)
                                    if e["details"]["decision"]["access"] == "read-write"], timeout=30,
                           what="ana's refused write recorded")
    assert event["details"]["decision"]["access_known"] is True  # told from openat's flags, not assumed
    assert (event.get("process") or {}).get("executable") == PYTHON


def test_monitor_mode_never_blocks_and_reports_would_deny(enforced: tuple[InstalledAgent, Path, Path],
                                                         people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, _, watched = enforced
    _, bo = people
    assert bo.run(CAT, str(watched)).stdout == _CONTENT[watched]
    assert bo.run("dd", f"if={watched}", "of=/dev/null", "bs=1M").returncode == 0
    (event, *_) = wait_for(lambda: _decisions(agent, "access-would-deny", bo.name, watched), timeout=30,
                           what="bo's open against the monitor policy recorded")
    assert event["details"]["decision"]["enforced"] is False


def test_a_grant_lets_in_until_it_expires(enforced: tuple[InstalledAgent, Path, Path],
                                         people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, locked, _ = enforced
    _, bo = people
    assert _denied_open(bo, locked)
    granted = subprocess.run([WEIGHTWARDEN, "access", "grant", bo.name, str(locked), "--program", CAT,
                              "--for", "6s", "--justification", "eval run", "--mode", "system"],
                             env=agent.env, capture_output=True, text=True, timeout=60)
    assert granted.returncode == 0, granted.stderr
    started = time.monotonic()
    assert bo.run(CAT, str(locked)).stdout == _CONTENT[locked]
    # the grant covers cat only: another program of bo's is still refused while it runs
    other = bo.run("dd", f"if={locked}", "of=/dev/null", check=False)
    assert other.returncode != 0 and b"Operation not permitted" in other.stderr
    wait_for(lambda: _denied_open(bo, locked), timeout=20, what="the grant to expire")
    assert time.monotonic() - started >= 5.5


def test_break_glass_lets_root_in_and_every_open_is_recorded(enforced: tuple[InstalledAgent, Path, Path]) -> None:
    agent, locked, _ = enforced
    refused = subprocess.run([CAT, str(locked)], capture_output=True, timeout=30)
    assert refused.returncode != 0 and b"Operation not permitted" in refused.stderr
    opened = subprocess.run([WEIGHTWARDEN, "access", "break-glass", "--for", "1m", "--reason", "incident 7",
                             "--mode", "system"], env=agent.env, capture_output=True, text=True, timeout=60)
    assert opened.returncode == 0, opened.stderr
    try:
        assert subprocess.run([CAT, str(locked)], capture_output=True, timeout=30).stdout == _CONTENT[locked]
        (event, *_) = wait_for(lambda: _decisions(agent, "access-break-glass-open", "root", locked), timeout=30,
                               what="root's break-glass open recorded")
        assert event["details"]["decision"]["break_glass"] is True
    finally:
        # close break-glass again: it is the break-glass file in the data dir that holds it open
        for name in os.listdir(Path(agent.env["WEIGHTWARDEN_DATA_DIR"]) / "access"):
            if "break" in name:
                os.unlink(Path(agent.env["WEIGHTWARDEN_DATA_DIR"]) / "access" / name)


def _cli_as(person: Person, agent: InstalledAgent, *argv: str) -> subprocess.CompletedProcess[bytes]:
    """`weightwarden ...` as this user, told where the agent's data dir is (WEIGHTWARDEN_DATA_DIR, as the
    agent was)."""
    return subprocess.run(["setpriv", f"--reuid={person.uid}", f"--regid={person.gid}", "--init-groups", "--",
                           WEIGHTWARDEN, *argv],
                          env={"HOME": str(person.home), "PATH": "/usr/bin:/bin", "USER": person.name,
                               "WEIGHTWARDEN_DATA_DIR": agent.env["WEIGHTWARDEN_DATA_DIR"]},
                          cwd=person.home, capture_output=True, timeout=120)


def _sealed_path(locked: Path) -> Path:
    return locked.parent.parent / "sealed" / "model.safetensors"


def test_unseal_goes_through_the_agent_and_the_policy(enforced: tuple[InstalledAgent, Path, Path],
                                                     people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, locked, _ = enforced
    ana, bo = people
    sealed = _sealed_path(locked)
    system = ["--mode", "system"]
    done = subprocess.run([WEIGHTWARDEN, "seal", str(sealed), *system], env=agent.env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with sealed.open("rb") as handle:  # root may read it under the sealed folder's policy
        sealed_bytes = handle.read()
    assert sealed_bytes != _CONTENT[sealed] and _CONTENT[sealed][:4096] not in sealed_bytes
    refused = _cli_as(bo, agent, "unseal", str(sealed), *system)
    assert refused.returncode == 1 and b"the access policy does not allow" in refused.stderr, refused
    assert sealed.read_bytes() == sealed_bytes  # still sealed
    wait_for(lambda: [e for e in _events(agent, "unseal-refused") if (e.get("process") or {}).get("user") == bo.name],
             timeout=30, what="bo's refused unseal recorded")
    allowed = _cli_as(ana, agent, "unseal", str(sealed), *system)
    assert allowed.returncode == 0, allowed.stderr
    assert sealed.read_bytes() == _CONTENT[sealed]
    wait_for(lambda: _events(agent, "model-unsealed"), timeout=30, what="the unseal recorded")
