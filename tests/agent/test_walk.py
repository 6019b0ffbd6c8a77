from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import can_read_unreadable_files
from weightwarden.agent.walk import ScanIssue, WalkCounts, walk_files


def files(items: list[tuple[str, os.stat_result] | ScanIssue]) -> list[str]:
    return sorted(os.path.basename(i[0]) for i in items if not isinstance(i, ScanIssue))


def test_walk_yields_regular_files_and_skips_the_rest(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"2")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # a directory cycle through a symlink
    counts = WalkCounts()
    items = list(walk_files([str(tmp_path)], counts=counts))
    assert files(items) == ["a", "b"]
    assert counts.special_skipped == 1
    assert counts.symlinks_skipped == 3
    assert not [i for i in items if isinstance(i, ScanIssue)]


def test_excluded_directories_are_not_entered(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x").write_bytes(b"1")
    (tmp_path / "y").write_bytes(b"1")
    counts = WalkCounts()
    assert files(list(walk_files([str(tmp_path)], exclude_dirs=[".git"], counts=counts))) == ["y"]
    assert counts.excluded_dirs == 1


def test_non_utf8_names_are_walked(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.bin")
    (tmp_path / name).write_bytes(b"1")
    (found,) = [i for i in walk_files([str(tmp_path)]) if not isinstance(i, ScanIssue)]
    assert os.fsencode(found[0]).endswith(b"caf\xe9.bin")


def test_missing_root_and_unreadable_directory_are_issues_not_errors(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "inside").write_bytes(b"1")
    (tmp_path / "ok").write_bytes(b"1")
    locked.chmod(0)
    try:
        items = list(walk_files([str(tmp_path / "missing"), str(tmp_path)]))
    finally:
        locked.chmod(0o755)
    issues = [i for i in items if isinstance(i, ScanIssue)]
    assert issues[0].path.endswith("missing") and "No such file" in issues[0].reason
    if can_read_unreadable_files():
        assert files(items) == ["inside", "ok"]
    else:
        assert files(items) == ["ok"]
        assert any(i.path.endswith("locked") and "Permission denied" in i.reason for i in issues)


def test_a_single_file_root_is_yielded(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"1")
    assert files(list(walk_files([str(tmp_path / "f")]))) == ["f"]
