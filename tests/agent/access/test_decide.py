"""Decisions over real processes, their identity read from /proc the way the agent reads it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.access.conftest import Person, Spawn, as_user
from tests.waiting import wait_for
from weightwarden.agent.access import grants
from weightwarden.agent.access.decide import Decider, ModelRef, Opener, opener_of
from weightwarden.agent.access.policy import AccessPolicies
from weightwarden.agent.events import Action
from weightwarden.agent.executables import ExecutableHashes

SLEEP = os.path.realpath(shutil.which("sleep") or "/usr/bin/sleep")
MODEL = ModelRef("/srv/models/llama/model.safetensors", "llama")
HASHES = ExecutableHashes()


def sha256(path: str) -> str:
    found = HASHES(path)
    assert found is not None
    return found


def policy(folder: Path, text: str) -> AccessPolicies:
    (folder / "policy.yml").write_text(text)
    policies = AccessPolicies([str(folder / "policy.yml")])
    assert policies.current.problems == (), policies.current.problems
    return policies


def opener(pid: int) -> Opener:
    found = opener_of(pid, HASHES)
    assert found is not None
    return found


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir an ordinary user can reach (pytest's own temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="ww-access-data-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def sleep_policy(tmp_path: Path, mode: str = "enforce", program: str | None = None) -> AccessPolicies:
    program = program or f"{{executable: {SLEEP}, sha256: {sha256(SLEEP)}}}"
    return policy(tmp_path, f"id: llama\napplies_to: {{models: [llama]}}\nmode: {mode}\n"
                            f"allow:\n  - users: [root]\n    programs: [{program}]\n    access: read\n")


def test_the_allowed_user_with_the_allowed_program_is_allowed(tmp_path: Path, spawn: Spawn) -> None:
    decider = Decider(sleep_policy(tmp_path))
    who = opener(spawn([SLEEP, "60"]).pid)
    assert (who.uid, who.user, who.executable) == (0, "root", SLEEP)
    decision = decider.decide(who, MODEL, "read")
    assert decision.allowed and decision.permit and decision.policy_id == "llama"
    assert decision.reason.startswith("allow[0] of llama")
    assert not decider.decide(who, MODEL, "write").allowed  # the entry allows read only
    assert decider.decide(who, ModelRef("/elsewhere/x.gguf", "other"), "write").reason == \
        "no policy applies to this model"


def test_another_user_is_denied(tmp_path: Path, spawn: Spawn, person: Person) -> None:
    decider = Decider(sleep_policy(tmp_path))
    who = opener(spawn([SLEEP, "60"], as_user=person).pid)
    assert who.uid == person.uid and who.executable == SLEEP
    decision = decider.decide(who, MODEL, "read")
    assert not decision.allowed and not decision.permit and decision.enforced
    assert "no allow entry of llama matches" in decision.reason


def test_a_copied_and_renamed_program_is_denied_when_the_policy_names_path_and_sha256(
        tmp_path: Path, spawn: Spawn) -> None:
    """The documented rule: given both, both must match; given only sha256, the content is allowed anywhere."""
    copy = tmp_path / "bin" / "nap"
    copy.parent.mkdir()
    shutil.copy2(SLEEP, copy)
    who = opener(spawn([str(copy), "60"]).pid)
    assert who.executable == str(copy) and who.executable_sha256 == sha256(SLEEP)
    assert not Decider(sleep_policy(tmp_path)).decide(who, MODEL, "read").allowed
    by_content = Decider(sleep_policy(tmp_path / "bin", program=f"{{sha256: {sha256(SLEEP)}}}"))
    assert by_content.decide(who, MODEL, "read").allowed
    # the allowed path holding another binary: same path, other sha256
    (tmp_path / "other").mkdir()
    impostor_policy = sleep_policy(tmp_path / "other", program=f"{{executable: {copy}, sha256: {'f' * 64}}}")
    assert not Decider(impostor_policy).decide(who, MODEL, "read").allowed


def test_interpreter_and_script(tmp_path: Path, spawn: Spawn) -> None:
    train = tmp_path / "train.py"
    train.write_text("import time\ntime.sleep(60)\n")
    other = tmp_path / "upload.py"
    other.write_text("import time\ntime.sleep(60)\n")
    digest = sha256(str(train))
    decider = Decider(policy(tmp_path, "id: llama\napplies_to: {models: [llama]}\nmode: enforce\nallow:\n"
                                       f"  - programs: [{{interpreter: python, script: {train}, "
                                       f"script_sha256: {digest}}}]\n"))
    who = opener(spawn([sys.executable, str(train)]).pid)
    assert (who.interpreter, who.script, who.script_sha256) == ("python", str(train), digest)
    assert decider.decide(who, MODEL, "read").allowed
    assert not decider.decide(opener(spawn([sys.executable, str(other)]).pid), MODEL, "read").allowed


def test_monitor_mode_reports_but_allows(tmp_path: Path, spawn: Spawn, person: Person) -> None:
    decider = Decider(sleep_policy(tmp_path, mode="monitor"))
    decision = decider.decide(opener(spawn([SLEEP, "60"], as_user=person).pid), MODEL, "read")
    assert not decision.allowed and not decision.enforced and decision.permit


def test_the_agents_own_process_is_always_allowed(tmp_path: Path) -> None:
    decision = Decider(sleep_policy(tmp_path)).decide(opener(os.getpid()), MODEL, "write")
    assert decision.allowed and decision.own


def test_a_grant_allows_until_it_expires(tmp_path: Path, spawn: Spawn, person: Person, data_dir: Path) -> None:
    book = grants.GrantBook(str(data_dir))
    decider = Decider(sleep_policy(tmp_path), grants=grants.GrantBook(str(data_dir)))
    who = opener(spawn([SLEEP, "60"], as_user=person).pid)
    assert not decider.decide(who, MODEL, "read").allowed
    made = book.grant(person.name, "llama", SLEEP, seconds=1.5, justification="eval run")
    decision = decider.decide(who, MODEL, "read")
    assert decision.allowed and decision.grant_id == made.id
    assert not grants.GrantBook(str(data_dir)).active()[0].covers(who.uid, MODEL.path, MODEL.name, "/bin/cp", None)
    wait_for(lambda: not decider.decide(who, MODEL, "read").allowed, timeout=10, what="the grant to expire")
    assert made.expires_at <= time.time()
    assert [g.id for g in book.sweep()] == [made.id] and book.grants() == ()
    actions = [e.action for e in grants.take_pending(str(data_dir))]
    assert actions == [Action.ACCESS_GRANTED, Action.ACCESS_GRANT_EXPIRED]
    assert grants.take_pending(str(data_dir)) == []  # taken once


def test_revoke_ends_a_grant_and_is_recorded(tmp_path: Path, spawn: Spawn, person: Person, data_dir: Path) -> None:
    book = grants.GrantBook(str(data_dir))
    decider = Decider(sleep_policy(tmp_path), grants=book, ttl=0.0)
    who = opener(spawn([SLEEP, "60"], as_user=person).pid)
    made = book.grant(person.name, "/srv/models/llama/*", None)
    assert made.expires_at - made.granted_at == grants.DEFAULT_SECONDS
    assert decider.decide(who, MODEL, "read").allowed
    book.revoke(made.id)
    assert not decider.decide(who, MODEL, "read").allowed
    actions = [e.action for e in grants.take_pending(str(data_dir))]
    assert actions == [Action.ACCESS_GRANTED, Action.ACCESS_REVOKED]


def test_a_user_cannot_grant_but_can_request(person: Person, data_dir: Path) -> None:
    code, message = as_user(person, lambda: grants.GrantBook(str(data_dir)).grant(person.name, "llama", None))
    assert code == 1 and "only root can grant access" in message
    code, message = as_user(person, lambda: grants.break_glass(str(data_dir), 60, "me"))
    assert code == 1 and "only root" in message
    grants.prepare_requests_dir(str(data_dir))
    code, message = as_user(person, lambda: grants.request(str(data_dir), "llama", None, "eval for ticket 42").id)
    assert code == 0, message
    pending = grants.pending_requests(str(data_dir))
    assert [(r.id, r.uid, r.user, r.justification) for r in pending] == [
        (message, person.uid, person.name, "eval for ticket 42")]
    records = grants.take_pending(str(data_dir))
    assert [e.action for e in records] == [Action.ACCESS_REQUESTED] and person.name in records[0].message
    assert grants.take_pending(str(data_dir)) == []  # a request is recorded once
    grants.GrantBook(str(data_dir)).grant(person.name, "llama", None)  # answers the request
    assert grants.pending_requests(str(data_dir)) == []


def test_a_grants_file_not_written_by_root_is_ignored(person: Person, data_dir: Path) -> None:
    book = grants.GrantBook(str(data_dir))
    book.grant(person.name, "llama", None)
    assert len(book.grants()) == 1
    os.chown(book.path, person.uid, person.gid)
    assert grants.GrantBook(str(data_dir)).grants() == ()


def test_break_glass_allows_root_and_marks_each_open(tmp_path: Path, spawn: Spawn, data_dir: Path) -> None:
    decider = Decider(policy(tmp_path, "id: llama\napplies_to: {models: [llama]}\nmode: enforce\n"
                                       "allow:\n  - users: [nobody]\n"),
                      grants=grants.GrantBook(str(data_dir)), break_glass=grants.BreakGlass(str(data_dir)))
    who = opener(spawn([SLEEP, "60"]).pid)
    assert not decider.decide(who, MODEL, "read").allowed
    grants.break_glass(str(data_dir), 3600, "incident 7: restore from backup")
    decision = decider.decide(who, MODEL, "read")
    assert decision.allowed and decision.break_glass and decision.reason == "root under break-glass"
    assert [e.action for e in grants.take_pending(str(data_dir))] == [Action.ACCESS_BREAK_GLASS]


def test_a_decision_is_cached_per_process_and_dropped_on_reload(tmp_path: Path, spawn: Spawn) -> None:
    policies = sleep_policy(tmp_path)
    decider = Decider(policies)
    who = opener(spawn([SLEEP, "60"]).pid)
    first = decider.decide(who, MODEL, "read")
    assert decider.decide(who, MODEL, "read") is first
    (tmp_path / "policy.yml").write_text("id: llama\napplies_to: {models: [llama]}\nmode: enforce\nallow: []\n")
    policies.reload()
    assert not decider.decide(who, MODEL, "read").allowed


def test_parents_and_services(tmp_path: Path, spawn: Spawn) -> None:
    """A program allowed only under a given parent: `sleep` started by sh matches, started by Python not."""
    shell = os.path.realpath(shutil.which("sh") or "/bin/sh")
    parent = spawn([shell, "-c", f"{SLEEP} 60; exit 0"])  # a command after it: sh forks sleep, does not exec it

    def child() -> int | None:
        try:
            text = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        except OSError:
            return None
        return int(text[0]) if text and os.path.realpath(f"/proc/{text[0]}/exe") == SLEEP else None

    under_shell = opener(wait_for(child, timeout=10, what="the child sleep"))
    assert under_shell.parents[0] == shell
    decider = Decider(policy(tmp_path, "id: llama\napplies_to: {models: [llama]}\nmode: enforce\nallow:\n"
                                       f"  - programs: [{SLEEP}]\n    parents: [{shell}]\n"
                                       "  - services: [train@*.service]\n"))
    assert decider.decide(under_shell, MODEL, "read").reason.startswith("allow[0]")
    alone = opener(spawn([SLEEP, "60"]).pid)
    assert alone.parents[0] != shell
    assert not decider.decide(alone, MODEL, "read").allowed
    # the unit comes from /proc/PID/cgroup (none for a process outside systemd, as here): the entry needs one
    assert alone.unit is None or not alone.unit.startswith("train@")
    in_unit = dataclasses.replace(alone, unit="train@3.service")
    assert decider.decide(in_unit, MODEL, "read").reason.startswith("allow[1]")
