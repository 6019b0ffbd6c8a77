"""The discovery walk: one fixed order, resumable after any file, never following links, never blocking,
never stopping on a bad entry; mount points decided from mountinfo before they are touched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import can_read_unreadable_files
from weightwarden.agent.discovery.roots import Mount, MountFilter, read_mounts, system_homes
from weightwarden.agent.discovery.walker import WalkTally, walk_from


def files(root: Path, after: str | None = None, **kwargs: object) -> list[str]:
    tally = WalkTally()
    return [os.path.relpath(p, root) for p, _ in walk_from(str(root), after, tally=tally, **kwargs)]  # type: ignore[arg-type]


def make_tree(root: Path) -> None:
    for rel in ("a/1", "a/2", "a/b/3", "a/b/c/4", "a0", "b/5", "c/d/e/6", "z"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)


def test_the_order_is_fixed_and_resuming_after_any_file_walks_exactly_the_rest(tmp_path: Path) -> None:
    make_tree(tmp_path)
    order = files(tmp_path)
    assert order == ["a/1", "a/2", "a/b/3", "a/b/c/4", "a0", "b/5", "c/d/e/6", "z"]
    for index, done in enumerate(order):
        assert files(tmp_path, str(tmp_path / done)) == order[index + 1:], done


def test_resuming_after_a_file_that_is_gone_continues_with_what_came_after_it(tmp_path: Path) -> None:
    make_tree(tmp_path)
    shutil.rmtree(tmp_path / "a" / "b")
    assert files(tmp_path, str(tmp_path / "a/b/c/4")) == ["a0", "b/5", "c/d/e/6", "z"]


def test_resuming_lists_only_the_directories_on_the_cursor_path(tmp_path: Path) -> None:
    make_tree(tmp_path)
    tally = WalkTally()
    rest = list(walk_from(str(tmp_path), str(tmp_path / "c/d/e/6"), tally=tally))
    assert [os.path.basename(p) for p, _ in rest] == ["z"]
    assert tally.directories == 4  # root, c, c/d, c/d/e: nothing under a/ or b/ again


def test_symlink_loops_fifos_and_sockets_never_block_and_are_never_followed(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "a" / "loop").symlink_to(tmp_path)
    (tmp_path / "self").symlink_to("self")
    os.mkfifo(tmp_path / "a" / "fifo")
    tally = WalkTally()
    found = [os.path.relpath(p, tmp_path) for p, _ in walk_from(str(tmp_path), None, tally=tally)]
    assert found == ["a/1", "a/2", "a/b/3", "a/b/c/4", "a0", "b/5", "c/d/e/6", "z"]
    assert tally.symlinks_skipped == 2 and tally.special_skipped == 1


def test_non_utf8_names_are_walked_and_resumed_from(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9"
    os.makedirs(raw)
    for name in (b"m\xff.bin", b"n.bin"):
        with open(raw + b"/" + name, "wb") as handle:
            handle.write(b"x")
    found = [p for p, _ in walk_from(str(tmp_path), None, tally=WalkTally())]
    assert [os.fsencode(p) for p in found] == [raw + b"/m\xff.bin", raw + b"/n.bin"]
    assert [p for p, _ in walk_from(str(tmp_path), found[0], tally=WalkTally())] == found[1:]


@pytest.mark.skipif(can_read_unreadable_files(), reason="root reads every directory")
def test_an_unreadable_directory_is_counted_and_named_and_the_walk_goes_on(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "b").chmod(0)
    try:
        tally = WalkTally()
        found = [os.path.relpath(p, tmp_path) for p, _ in walk_from(str(tmp_path), None, tally=tally)]
    finally:
        (tmp_path / "b").chmod(0o755)
    assert "b/5" not in found and "z" in found
    assert tally.unreadable == 1 and tally.not_covered[0].startswith(f"{tmp_path / 'b'}: ")


def test_a_directory_that_vanishes_mid_pass_is_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path)
    walk = walk_from(str(tmp_path), None, tally=(tally := WalkTally()))
    first = next(walk)  # a/1: the root and a/ are listed, b/ and c/ not yet
    shutil.rmtree(tmp_path / "c")
    rest = [os.path.relpath(p, tmp_path) for p, _ in walk]
    assert os.path.relpath(first[0], tmp_path) == "a/1"
    assert rest == ["a/2", "a/b/3", "a/b/c/4", "a0", "b/5", "z"]
    assert tally.unreadable == 0  # gone is not "not covered"


def test_excluded_names_and_skipped_dirs_are_not_entered(tmp_path: Path) -> None:
    make_tree(tmp_path)
    found = files(tmp_path, excluded_names=frozenset({"b"}), skip_dir=lambda p: p.endswith("/c"))
    assert found == ["a/1", "a/2", "a0", "z"]


def test_mount_points_are_decided_by_their_filesystem_before_they_are_touched() -> None:
    mounts = {
        "/home/ana/nfs": Mount("/home/ana/nfs", "nfs4", "/"),
        "/home/ana/box": Mount("/home/ana/box", "fuse.sshfs", "/"),
        "/home/ana/data": Mount("/home/ana/data", "ext4", "/"),
        "/home/ana/bound": Mount("/home/ana/bound", "ext4", "/srv/data"),
        "/home/ana/proc": Mount("/home/ana/proc", "proc", "/"),
    }
    strict = MountFilter(mounts)
    assert strict.skip_reason("/home/ana/data") is None and strict.skip_reason("/home/ana/x") is None
    assert "network" in (strict.skip_reason("/home/ana/nfs") or "")
    assert "network" in (strict.skip_reason("/home/ana/box") or "")
    assert "bind mount" in (strict.skip_reason("/home/ana/bound") or "")
    assert "pseudo" in (strict.skip_reason("/home/ana/proc") or "")
    assert strict.skip_reason("/run/user/1000") == strict.skip_reason("/proc") == "kernel tree"
    assert MountFilter(mounts, network=True).skip_reason("/home/ana/nfs") is None


def test_mountinfo_is_read_with_its_escapes(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("22 27 0:21 / /proc rw,relatime - proc proc rw\n"
                    "40 27 0:50 /sub /media/my\\040stick rw - vfat /dev/sdb1 rw\n")
    assert read_mounts(str(info)) == {"/proc": Mount("/proc", "proc", "/"),
                                      "/media/my stick": Mount("/media/my stick", "vfat", "/sub")}
    assert read_mounts(str(tmp_path / "absent")) == {}


def test_system_homes_are_login_accounts_and_root_never_slash() -> None:
    import pwd

    def account(name: str, uid: int, home: str) -> pwd.struct_passwd:
        return pwd.struct_passwd((name, "x", uid, uid, "", home, "/bin/bash"))

    homes = system_homes([account("root", 0, "/root"), account("daemon", 1, "/usr/sbin"),
                          account("ana", 1000, "/home/ana"), account("bo", 1001, "/srv/bo"),
                          account("nobody", 65534, "/nonexistent"), account("odd", 1002, "/")])
    assert homes == ["/home", "/root", "/home/ana", "/srv/bo"]


def test_an_overlays_layers_are_read_with_their_escapes(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text("90 1 0:55 / /home/ana/view rw,relatime - overlay overlay rw,"
                     "lowerdir=/home/ana/a\\,b:/srv/c\\:d,upperdir=/home/ana/up\\040per,workdir=/home/ana/w\n")
    (view,) = read_mounts(str(table)).values()
    assert view.layers == ("/home/ana/a,b", "/srv/c:d", "/home/ana/up per")
    assert MountFilter({view.point: view}, roots=("/home/ana",)).skip_reason(view.point) is None  # /srv
    inside = Mount(view.point, "overlay", "/", ("/home/ana/a,b", "/home/ana/up per"))
    assert "overlay" in (MountFilter({view.point: inside}, roots=("/home/ana",)).skip_reason(view.point) or "")
