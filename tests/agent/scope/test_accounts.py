"""Accounts that are people, from passwd/login.defs/shells files the tests write: hostile input included."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from weightwarden.agent.scope import accounts
from weightwarden.agent.scope.accounts import AccountFiles, read_accounts


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "shells").write_text("# /etc/shells: valid login shells\n/bin/sh\n/bin/bash\n/usr/bin/zsh\n")
    (folder / "login.defs").write_text("# comment\nUID_MIN\t\t 1000\nUID_MAX\t\t60000\nMAIL_DIR /var/mail\n")
    return folder


def homes(tmp_path: Path, *names: str) -> dict[str, Path]:
    made = {}
    for name in names:
        made[name] = tmp_path / "home" / name
        made[name].mkdir(parents=True)
    return made


def files(etc: Path) -> AccountFiles:
    return AccountFiles(str(etc / "passwd"), str(etc / "login.defs"), str(etc / "shells"))


def test_people_are_login_range_accounts_with_a_shell_and_a_home(etc: Path, tmp_path: Path) -> None:
    home = homes(tmp_path, "root", "alice", "bob", "svc")
    (etc / "passwd").write_text(
        f"root:x:0:0:root:{home['root']}:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        f"alice:x:1001:1001:Alice,,,:{home['alice']}:/bin/bash\n"
        f"bob:x:1002:1002::{home['bob']}:/usr/bin/zsh\n"
        f"svc:x:1003:1003::{home['svc']}:/usr/sbin/nologin\n"
        f"ghost:x:1004:1004::{tmp_path}/home/ghost:/bin/bash\n"
        f"fish:x:1005:1005::{home['alice']}:/usr/bin/fish\n"
        f"big:x:70000:70000::{home['bob']}:/bin/bash\n")
    found = read_accounts(files(etc))
    people = [(a.name, a.uid, a.home) for a in found.people]
    # root too: the administrator's downloads (`sudo hf download`) land in root's home
    assert people == [("root", 0, str(home["root"])), ("alice", 1001, str(home["alice"])),
                      ("bob", 1002, str(home["bob"]))]
    why = {n.name: n.why for n in found.not_covered}
    assert why == {"daemon": "system-account", "svc": "no-login-shell", "ghost": "no-home",
                   "fish": "no-login-shell", "big": "system-account"}
    detail = {n.name: n.detail for n in found.not_covered}
    assert detail["ghost"] == f"home {tmp_path}/home/ghost does not exist"
    assert detail["fish"] == "no login shell (/usr/bin/fish)"  # not listed in /etc/shells
    assert detail["big"] == "system account (uid 70000 outside 1000-60000)"
    assert found.problems == ()


def test_without_etc_shells_any_shell_but_the_non_login_ones_counts(etc: Path, tmp_path: Path) -> None:
    home = homes(tmp_path, "a")
    (etc / "shells").unlink()
    (etc / "passwd").write_text(f"a:x:1001:1001::{home['a']}:/usr/bin/fish\n"
                                f"b:x:1002:1002::{home['a']}:/bin/false\n"
                                f"c:x:1003:1003::{home['a']}:/bin/sync\n"
                                f"d:x:1004:1004::{home['a']}:\n")  # empty shell: /bin/sh
    found = read_accounts(files(etc))
    assert [a.name for a in found.people] == ["a", "d"]
    assert found.people[1].shell == "/bin/sh"


def test_login_defs_range_and_its_bad_values(etc: Path, tmp_path: Path) -> None:
    home = homes(tmp_path, "a")
    (etc / "passwd").write_text(f"a:x:500:500::{home['a']}:/bin/sh\nb:x:2000:2000::{home['a']}:/bin/sh\n")
    (etc / "login.defs").write_text("UID_MIN 500\nUID_MAX 0x3e8\n")  # 1000 in hex, as shadow accepts
    assert [a.name for a in read_accounts(files(etc)).people] == ["a"]
    (etc / "login.defs").write_text("UID_MIN lots\nUID_MAX 1500\n")
    found = read_accounts(files(etc))
    assert [a.name for a in found.people] == []  # 1000-1500
    assert found.problems == (f"{etc}/login.defs:1: UID_MIN 'lots' is not a number; default used",)
    (etc / "login.defs").write_text("UID_MIN 5000\nUID_MAX 10\n")
    found = read_accounts(files(etc))
    assert [a.name for a in found.people] == ["b"]  # the defaults, 1000-60000
    assert "make no range" in found.problems[0]
    (etc / "login.defs").unlink()
    assert [a.name for a in read_accounts(files(etc)).people] == ["b"]


def test_malformed_lines_are_problems_with_their_line_numbers(etc: Path, tmp_path: Path) -> None:
    home = homes(tmp_path, "ok")
    (etc / "passwd").write_bytes(
        b"# a comment\n\n"
        b"short:x:1001\n"
        b"toolong:x:1002:1002::/h:/bin/sh:extra\n"
        b"neg:x:-5:1000::/h:/bin/sh\n"
        b"huge:x:99999999999:1::/h:/bin/sh\n"
        b":x:1003:1003::/h:/bin/sh\n"
        b"+nisuser::::::\n"
        + f"ok:x:1004:1004::{home['ok']}:/bin/sh\r\n".encode())
    found = read_accounts(files(etc))
    assert [a.name for a in found.people] == ["ok"]
    passwd = f"{etc}/passwd"
    assert found.problems == (
        f"{passwd}:3: 3 fields, 7 expected",
        f"{passwd}:4: 8 fields, 7 expected",
        f"{passwd}:5: no name, or a uid or gid that is not a number",
        f"{passwd}:6: no name, or a uid or gid that is not a number",
        f"{passwd}:7: no name, or a uid or gid that is not a number",
        f"{passwd}:8: NIS entry skipped (directory-service accounts are not local)",
    )


def test_names_and_homes_that_are_not_utf8_keep_their_bytes(etc: Path, tmp_path: Path) -> None:
    raw_home = os.fsencode(tmp_path) + b"/home/j\xe9r\xf4me"
    os.makedirs(raw_home)
    (etc / "passwd").write_bytes(b"j\xe9r\xf4me:x:1001:1001:J\xe9r\xf4me:" + raw_home + b":/bin/bash\n")
    (person,) = read_accounts(files(etc)).people
    assert os.fsencode(person.name) == b"j\xe9r\xf4me"
    assert os.fsencode(person.home) == raw_home


def test_duplicate_uids_are_all_people_and_a_duplicate_name_counts_once(etc: Path, tmp_path: Path) -> None:
    home = homes(tmp_path, "a", "b", "c")
    (etc / "passwd").write_text(f"a:x:1001:1001::{home['a']}:/bin/sh\n"
                                f"b:x:1001:1001::{home['b']}:/bin/sh\n"  # same uid, another home: both count
                                f"a:x:1002:1002::{home['c']}:/bin/sh\n")
    found = read_accounts(files(etc))
    assert [(a.name, a.home) for a in found.people] == [("a", str(home["a"])), ("b", str(home["b"]))]
    assert [(n.name, n.why) for n in found.not_covered] == [("a", "duplicate-name")]


def test_a_huge_passwd_is_read_up_to_the_bound(etc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = homes(tmp_path, "first")
    monkeypatch.setattr(accounts, "MAX_FILE_BYTES", 4096)
    line = f"first:x:1001:1001::{home['first']}:/bin/sh\n".encode()
    (etc / "passwd").write_bytes(line + b"x" * 100_000 + b"\nlast:x:1002:1002::/h:/bin/sh\n")
    found = read_accounts(files(etc))
    assert [a.name for a in found.people] == ["first"]
    assert f"{etc}/passwd: {len(line) + 100_000 + 30} bytes; only the first 4096 were read" in found.problems


def test_a_passwd_that_is_a_fifo_or_missing_never_blocks(etc: Path) -> None:
    os.mkfifo(etc / "passwd")
    found = read_accounts(files(etc))
    assert found.people == () and "not a regular file" in found.problems[0]
    (etc / "passwd").unlink()
    assert read_accounts(files(etc)).problems == (f"{etc}/passwd: does not exist",)


def test_homes_that_hang_are_unreachable_within_one_shared_deadline(
        etc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = homes(tmp_path, "nfs1", "nfs2", "local")
    (etc / "passwd").write_text("".join(f"{name}:x:{1001 + i}:1001::{home[name]}:/bin/sh\n"
                                        for i, name in enumerate(("nfs1", "local", "nfs2"))))
    released = threading.Event()
    real_stat = os.stat

    def hung_on_nfs(path: str) -> os.stat_result:
        if "/nfs" in path:
            released.wait(30)  # a stat on a dead NFS server: stuck in the kernel
        return real_stat(path)

    monkeypatch.setattr(accounts, "stat_home", hung_on_nfs)
    try:
        started = time.monotonic()
        found = read_accounts(files(etc), home_seconds=0.5)
        assert time.monotonic() - started < 0.9  # two hung homes, one deadline
        assert [a.name for a in found.people] == ["local"]
        assert [(n.name, n.why, n.detail) for n in found.not_covered] == [
            ("nfs1", "home-unreachable", f"home {home['nfs1']} unreachable: no answer within 0.5 s"),
            ("nfs2", "home-unreachable", f"home {home['nfs2']} unreachable: no answer within 0.5 s")]
        # while the first look is still stuck, the next one does not pile up another thread
        started = time.monotonic()
        again = read_accounts(files(etc), home_seconds=5)
        assert time.monotonic() - started < 1
        assert again.not_covered[0].detail == f"home {home['nfs1']} unreachable: an earlier look has not returned yet"
    finally:
        released.set()
