"""`weightwarden audit` (issue 17): real files with real modes, owners and ACLs, audited through the real command.

Root is needed to create an account and a group and to give files away; `setfacl` (Debian package `acl`)
to write ACLs the way people do. The reader lists are checked against accounts made here, never guessed.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.agent.cli.helpers import json_lines, run_cli
from tests.waiting import wait_for
from weightwarden.agent.alert_evidence import CopyEvidence
from weightwarden.agent.audit import acl
from weightwarden.agent.audit.record import SummaryError, summary_event
from weightwarden.agent.audit.report import FLAGS, Account, Accounts, audit
from weightwarden.agent.control import Authorizer, ControlServer, Peer
from weightwarden.agent.events import Alert, Destination, ModelFile, display_path
from weightwarden.agent.store import Store


@dataclass(frozen=True)
class Someone:
    name: str
    uid: int
    group: str
    gid: int


@pytest.fixture(scope="module")
def someone() -> Iterator[Someone]:
    """An ordinary account, member of a group of its own making (and of nothing else the test uses)."""
    if os.geteuid() != 0:
        pytest.skip("creating an account and giving files away needs root")
    for tool in ("useradd", "userdel", "groupadd", "groupdel"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    tag = secrets.token_hex(3)
    name, group = f"wwaud{tag}", f"wwaudg{tag}"
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    try:
        subprocess.run(["useradd", "--no-create-home", "--groups", group, name], check=True, capture_output=True)
        try:
            entry = pwd.getpwnam(name)
            yield Someone(name, entry.pw_uid, group, grp.getgrnam(group).gr_gid)
        finally:
            subprocess.run(["userdel", "--force", name], check=False, capture_output=True)
    finally:
        subprocess.run(["groupdel", group], check=False, capture_output=True)


def require_setfacl() -> None:
    if shutil.which("setfacl") is None:
        pytest.skip("setfacl is not installed (Debian package acl)")


def open_folders(path: Path) -> None:
    """pytest makes its temporary folders 0700: open them (o+x) so other accounts can reach the files."""
    for folder in [path, *path.parents]:
        if folder == Path("/tmp") or folder == Path("/"):
            break
        folder.chmod(0o755)


def model(path: Path | bytes, mode: int, *, owner: int = 0, group: int = 0) -> str:
    """A small real safetensors file at `path` (bytes: a name that need not be text); its identity string."""
    target = os.fsdecode(path)
    plain = os.path.join(os.path.dirname(target), "writing.safetensors")  # the writer wants a text name
    save_file({"w": np.arange(16, dtype=np.float32).reshape(4, 4)}, plain)
    os.rename(plain, target)
    os.chown(target, owner, group)
    os.chmod(target, mode)
    return target


def inventory(paths: list[str]) -> list[ModelFile]:
    return [ModelFile(path=p, format="safetensors", size=os.path.getsize(p), model=f"m{i}",
                      quick_fingerprint=f"q{i}", path_hex=None) for i, p in enumerate(paths)]


def store_with(tmp_path: Path, files: list[ModelFile], alerts: Sequence[Alert] = ()) -> Path:
    data = tmp_path / "data"
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\ndata_dir = "{data}"\n')
    store = Store(data / "weightwarden.db")
    try:
        store.upsert_model_files(files, seen=datetime.now(UTC))
        store.write(list(alerts))
    finally:
        store.close()
    return config


def run_audit(config: Path, *args: str) -> tuple[int, Any]:
    done = run_cli("audit", "--json", "--config", str(config), "--mode", "user", *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {os.path.basename(f["path"]): f for f in report["files"]}


def other_accounts() -> set[str]:
    """Every account but root's, one name per uid (as the audit counts them)."""
    seen: dict[int, str] = {}
    for entry in pwd.getpwall():
        seen.setdefault(entry.pw_uid, entry.pw_name)
    return {name for uid, name in seen.items() if uid != 0}


# --------------------------------------------------------------------------- the command, end to end

@pytest.fixture
def models(tmp_path: Path, someone: Someone) -> tuple[Path, dict[str, str]]:
    require_setfacl()
    folder = tmp_path / "models"
    folder.mkdir()
    open_folders(folder)
    paths = {
        "private": model(folder / "private.safetensors", 0o600),
        "everyone": model(folder / "everyone.safetensors", 0o644),
        "writable": model(folder / "writable.safetensors", 0o602),
        "team": model(folder / "team.safetensors", 0o660, group=someone.gid),
        "theirs": model(folder / "theirs.safetensors", 0o400, owner=someone.uid),
        "acl": model(folder / "acl.safetensors", 0o600),
        "masked": model(folder / "masked.safetensors", 0o600),
        "gone": model(folder / "gone.safetensors", 0o600),
    }
    subprocess.run(["setfacl", "-m", f"u:{someone.name}:r", paths["acl"]], check=True)
    subprocess.run(["setfacl", "-m", f"g:{someone.group}:r,m::---", paths["masked"]], check=True)
    return folder, paths


def test_the_audit_reports_modes_acls_flags_and_computed_readers(
        tmp_path: Path, someone: Someone, models: tuple[Path, dict[str, str]]) -> None:
    folder, paths = models
    files = inventory(list(paths.values()))
    copy = Alert("model-copy", "copy", 6, "copied", paths=(str(folder / "stick" / "x.safetensors"),),
                 destination=Destination("removable", path="/media/stick/x.safetensors"),
                 evidence=CopyEvidence(source_path=display_path(paths["everyone"]),
                                       copy_path="/media/stick/x.safetensors"))
    config = store_with(tmp_path, files, [copy])
    os.unlink(paths["gone"])

    code, report = run_audit(config)
    assert code == 1  # world-readable and world-writable files
    assert report["format"] == "weightwarden-audit" and report["version"] == 1
    files_by = by_name(report)
    assert set(files_by) == {os.path.basename(p) for p in paths.values()}

    private = files_by["private.safetensors"]
    assert (private["mode"], private["owner"], private["group"]["id"]) == ("0600", {"id": 0, "name": "root"}, 0)
    assert private["flags"] == ["temporary"] and private["place"] == "temporary"
    assert private["readers"] == {"count": 0, "names": [], "truncated": False}
    assert private["acl"] == [] and private["policy"] is None and private["copies"] == []

    everyone = files_by["everyone.safetensors"]
    assert everyone["flags"] == ["temporary", "world-readable"]
    assert everyone["readers"]["count"] == len(other_accounts())
    assert len(everyone["readers"]["names"]) == min(20, len(other_accounts()))
    assert everyone["readers"]["truncated"] == (len(other_accounts()) > 20)
    assert [(c["copy_path"], c["destination_kind"], c["severity"]) for c in everyone["copies"]] == [
        ("/media/stick/x.safetensors", "removable", 6)]

    assert files_by["writable.safetensors"]["flags"] == ["temporary", "world-writable"]
    assert files_by["writable.safetensors"]["readers"]["count"] == 0  # anyone may write it, nobody read it

    team = files_by["team.safetensors"]
    assert team["group"] == {"id": someone.gid, "name": someone.group}
    assert team["flags"] == ["group-writable", "temporary"]
    assert team["readers"]["names"] == [someone.name]

    theirs = files_by["theirs.safetensors"]
    assert theirs["owner"] == {"id": someone.uid, "name": someone.name} and theirs["mode"] == "0400"
    assert theirs["readers"]["names"] == [someone.name]

    with_acl = files_by["acl.safetensors"]
    assert with_acl["flags"] == ["acl-named-reader", "temporary"]
    assert {"tag": "user", "id": someone.uid, "name": someone.name, "perm": "r--", "effective": "r--"} \
        in with_acl["acl"]
    assert with_acl["readers"] == {"count": 1, "names": [someone.name], "truncated": False}
    assert with_acl["mode"] == "0640"  # with an ACL the group bits are the mask

    masked = files_by["masked.safetensors"]
    assert {"tag": "group", "id": someone.gid, "name": someone.group, "perm": "r--", "effective": "---"} \
        in masked["acl"]
    assert "acl-named-reader" not in masked["flags"] and masked["readers"]["count"] == 0  # the mask wins

    gone = files_by["gone.safetensors"]
    assert gone["status"] == "missing" and gone["flags"] == [] and gone["mode"] is None

    summary = report["summary"]
    assert set(summary["flags"]) == set(FLAGS)
    assert (summary["files"], summary["missing"], summary["present"]) == (8, 1, 7)
    assert summary["flags"]["world-readable"] == 1 and summary["flags"]["acl-named-reader"] == 1
    assert summary["flags"]["temporary"] == 7 and summary["high_risk"] == 2

    table = run_cli("audit", "--config", str(config), "--mode", "user")
    assert table.returncode == 1 and "MISSING" in table.stdout and "acl-named-reader" in table.stdout
    assert "8 protected model files (1 missing)" in table.stderr


def test_a_closed_folder_is_not_world_readable(tmp_path: Path, someone: Someone) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    open_folders(folder)
    folder.chmod(0o700)
    path = model(folder / "open.safetensors", 0o644)
    code, report = run_audit(store_with(tmp_path, inventory([path])))
    assert code == 0
    assert report["files"][0]["flags"] == ["temporary"] and report["files"][0]["readers"]["count"] == 0


def test_hostile_names_are_escaped_in_json_html_and_pdf(tmp_path: Path, someone: Someone) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    open_folders(folder)
    raw = os.fsencode(folder) + b"/evil\n<script>alert(1)<script>\xff.safetensors"
    path = model(raw, 0o600)
    files = [ModelFile(path=path, format="safetensors", size=os.path.getsize(path), model="<b>m</b>",
                       path_hex=raw.hex())]
    config = store_with(tmp_path, files)
    page, pdf = tmp_path / "audit.html", tmp_path / "audit.pdf"
    done = run_cli("audit", "--json", "--html", str(page), "--pdf", str(pdf), "--config", str(config),
                   "--mode", "user", env={"QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1  # one JSON object, the newline in the name escaped
    entry = json.loads(done.stdout)["files"][0]
    assert entry["path"].endswith("/evil\\x0a<script>alert(1)<script>\\xff.safetensors")
    assert bytes.fromhex(entry["path_hex"]) == raw and entry["status"] == "present"

    text = page.read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>m</b>" not in text
    assert "evil\\x0a&lt;script&gt;alert(1)&lt;script&gt;\\xff.safetensors" in text
    assert "&lt;b&gt;m&lt;/b&gt;" in text

    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert re.search(rb"/Type\s*/Page\b", data), "the PDF has no page"


def test_record_writes_a_chained_audit_summary_event(tmp_path: Path, someone: Someone) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    open_folders(folder)
    config = store_with(tmp_path, inventory([model(folder / "everyone.safetensors", 0o644)]))
    done = run_cli("audit", "--json", "--record", "--config", str(config), "--mode", "user")
    assert done.returncode == 1, done.stderr
    events = json_lines(run_cli("events", "--json", "--config", str(config), "--mode", "user").stdout)
    summaries = [e for e in events if e["event"]["action"] == "audit-summary"]
    assert len(summaries) == 1 and summaries[0]["event"]["severity"] == 5
    assert summaries[0]["details"]["summary"]["flags"]["world-readable"] == 1
    verified = run_cli("verify", "--unsigned", "--config", str(config), "--mode", "user")
    assert verified.returncode == 0, verified.stdout + verified.stderr


# --------------------------------------------------------------------------- pieces

def test_record_audit_over_the_control_socket_is_for_admins_and_checked(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    received: list[object] = []

    def on_audit(summary: object) -> None:
        received.append(summary_event(summary))

    server = ControlServer(str(tmp_path / "control.sock"), store, Authorizer(), on_audit=on_audit)
    summary = {"files": 2, "present": 2, "missing": 0, "with_findings": 1, "high_risk": 0,
               "flags": {"group-writable": 1}}
    try:
        nobody = server.handle(Peer(pid=1, uid=64123, gid=64123), {"op": "record-audit", "summary": summary})
        assert nobody["ok"] is False and "admin" in nobody["error"]
        bad = server.handle(Peer(pid=1, uid=0, gid=0), {"op": "record-audit", "summary": {"files": "many"}})
        assert bad == {"ok": False, "error": "summary.files must be a whole number"}
        assert server.handle(Peer(pid=1, uid=0, gid=0), {"op": "record-audit", "summary": summary}) == {"ok": True}
    finally:
        store.close()
    assert len(received) == 1
    event = summary_event(summary)
    assert event.severity == 3 and event.details["summary"]["flags"]["group-writable"] == 1
    with pytest.raises(SummaryError):
        summary_event([])


def test_acl_decoding_refuses_what_is_not_a_version_2_acl() -> None:
    assert acl.decode(b"\x02\x00\x00\x00").entries == ()
    for data in (b"", b"\x01\x00\x00\x00", b"\x02\x00\x00\x00\x01\x00"):
        with pytest.raises(acl.AclError):
            acl.decode(data)
    entry = b"\x02\x00\x04\x00" + (1234).to_bytes(4, "little")
    decoded = acl.decode(b"\x02\x00\x00\x00" + entry)
    assert decoded.entries == (acl.AclEntry(acl.USER, acl.READ, 1234),)


def test_removable_media_is_high_risk(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(path))
    path.chmod(0o600)
    report = audit(inventory([str(path)]), accounts=Accounts([Account(1000, "ana", frozenset({1000}))]),
                   place_of=lambda p: "removable")
    assert report.files[0].flags == ["removable-media"] and report.high_risk
    assert report.summary["high_risk"] == 1
    cloud = audit(inventory([str(path)]), accounts=Accounts([]), place_of=lambda p: "cloud-sync")
    assert cloud.files[0].flags == ["cloud-sync"] and not cloud.high_risk


def test_a_report_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    config = store_with(tmp_path, [])
    for option in ("--html", "--pdf"):
        done = run_cli("audit", option, str(tmp_path / "no-such-folder" / "report"), "--config", str(config),
                       "--mode", "user", env={"QT_QPA_PLATFORM": "offscreen"})
        assert done.returncode == 2 and f"{option}: could not write" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.e2e
def test_a_running_agent_records_the_summary_and_copies_are_listed(tmp_path: Path) -> None:
    """The agent as a subprocess: it inventories a model, a `cp` of it raises model-copy, the audit lists that
    copy under its source, and `--record` goes through the agent's control socket into its chain."""
    from tests.agent.cli.helpers import QUIET_WORLD, wait_for, write_config
    from tests.agent.cli.test_agent_e2e import RunningAgent
    from tests.conftest import write_safetensors

    models, elsewhere, data = (tmp_path / n for n in ("models", "elsewhere", "data"))
    for folder in (models, elsewhere, data):
        folder.mkdir()
    config = write_config(tmp_path / "config.toml", data_dir=data, protected=[models], watched=[elsewhere])
    with config.open("a") as out:
        out.write(QUIET_WORLD)
    source = models / "llama" / "model.safetensors"
    write_safetensors(source, rows=512)
    agent = RunningAgent(config, dict(os.environ))
    try:
        wait_for(lambda: "scan-finished" in agent.actions(), timeout=60, what="the initial inventory")
        subprocess.run(["cp", str(source), str(elsewhere / "innocent.bin")], check=True)
        wait_for(lambda: any(a["rule"] == "model-copy" for a in agent.records("alerts")), timeout=60,
                 what="the model-copy alert")
        done = run_cli("audit", "--json", "--record", "--config", str(config))
        assert done.returncode in (0, 1), done.stderr
        report = json.loads(done.stdout)
        audited = {f["path"]: f for f in report["files"]}
        assert [c["copy_path"] for c in audited[str(source)]["copies"]] == [str(elsewhere / "innocent.bin")]
        wait_for(lambda: "audit-summary" in agent.actions(), timeout=30, what="the agent's audit-summary event")
        assert agent.stop() == 0
    finally:
        if agent.process.poll() is None:
            agent.stop(signal.SIGKILL)
    summaries = [e for e in agent.records("events") if e["event"]["action"] == "audit-summary"]
    assert len(summaries) == 1 and summaries[0]["details"]["summary"]["files"] == report["summary"]["files"]
    verified = run_cli("verify", "--config", str(config))
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="grants are written by root")
def test_the_policy_column_names_the_governing_policy_its_allow_entries_and_grants(tmp_path: Path) -> None:
    from weightwarden.agent.access.grants import GrantBook

    folder = tmp_path / "models"
    folder.mkdir()
    named, globbed, free = (model(folder / f"{n}.safetensors", 0o600) for n in ("named", "globbed", "free"))
    files = inventory([named, globbed, free])  # models m0, m1, m2
    config = store_with(tmp_path, files)
    policies = tmp_path / "access.d"
    policies.mkdir()
    (policies / "team.yml").write_text(
        "id: m0-weights\napplies_to: {models: [m0]}\nmode: enforce\nallow:\n"
        "  - users: [root]\n    groups: [adm]\n    programs:\n      - {executable: /usr/bin/python3}\n"
        "    access: read\n"
        "---\n"
        f"id: all-models\napplies_to: {{paths: ['{folder}/*']}}\nallow:\n  - services: [train@*.service]\n")
    book = GrantBook(str(tmp_path / "data"))
    kept = book.grant("root", "m0", None, 3600, "eval")
    book.grant("root", "m2", None, 3600)  # m2 falls under all-models by path; a grant naming it is listed there
    gone = book.grant("root", "m0", None, 1)
    wait_for(lambda: time.time() > gone.expires_at, timeout=5, what="the 1 s grant to expire")  # not listed then
    code, report = run_audit(config, "--policy", str(policies))
    assert code == 0
    found = by_name(report)
    first = found["named.safetensors"]["policy"]
    assert (first["id"], first["mode"], first["file"], first["line"]) == (
        "m0-weights", "enforce", str(policies / "team.yml"), 1)
    assert first["allow"] == [{"users": ["root"], "groups": ["adm"], "programs": [{"executable": "/usr/bin/python3"}],
                               "parents": [], "services": [], "access": "read", "line": 5}]
    assert [g["id"] for g in first["grants"]] == [kept.id] and 3500 < first["grants"][0]["seconds_left"] <= 3600
    second = found["globbed.safetensors"]["policy"]
    assert (second["id"], second["mode"], second["line"], second["grants"]) == ("all-models", "monitor", 11, [])
    assert second["allow"][0]["services"] == ["train@*.service"]
    assert [g["user"] for g in found["free.safetensors"]["policy"]["grants"]] == ["root"]
    # Without the policy files no policy governs them: null, and the text table says "-".
    _, bare = run_audit(config, "--policy", str(tmp_path / "no-policies"))
    assert [f["policy"] for f in bare["files"]] == [None, None, None]
    table = run_cli("audit", "--config", str(config), "--mode", "user", "--policy", str(policies))
    assert re.search(r"m0-weights enforce \(team\.yml:1\): root, @adm with /usr/bin/python3 \(read\); "
                     r"grants: root \((0 h 59|1 h 00) min left\)", table.stdout), table.stdout
    page = tmp_path / "audit.html"
    run_cli("audit", "--config", str(config), "--mode", "user", "--policy", str(policies), "--html", str(page))
    assert "<b>m0-weights</b> enforce" in page.read_text() and "anyone in train@*.service (read)" in page.read_text()
