"""The data directory remembers the newest version that used it; an older agent refuses to run there."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightwarden.agent import __version__, version_stamp
from weightwarden.agent.cli.main import main
from weightwarden.agent.version_stamp import DowngradeError, check, read_stamp, record, version_key


@pytest.mark.parametrize(("older", "newer"), [
    ("0.1.0", "0.2.0"), ("0.9.0", "0.10.0"), ("1.2.0rc1", "1.2.0"), ("1.2.0a1", "1.2.0b1"),
    ("1.2.0b2", "1.2.0rc1"), ("1.2", "1.2.1"), ("1.2.0-1", "1.2.1-1"),
])
def test_versions_order_like_releases(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


def test_trailing_zeros_and_debian_revisions_are_the_same_release() -> None:
    assert version_key("1.2") == version_key("1.2.0") == version_key("1.2.0-3")


def test_a_garbled_version_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError):
        version_key("latest")


def test_record_keeps_the_newest_version(tmp_path: Path) -> None:
    record(tmp_path, "0.2.0")
    record(tmp_path, "0.1.0")  # an older tool touching the data must not lower the mark
    assert read_stamp(tmp_path) == "0.2.0"
    record(tmp_path, "0.3.0")
    assert read_stamp(tmp_path) == "0.3.0"
    assert [p.name for p in tmp_path.iterdir()] == ["weightwarden.version"]  # no temporary left


def test_check_refuses_older_versions_with_a_clear_message(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    check(tmp_path, "0.1.0")  # no stamp yet: fine
    record(tmp_path, "0.2.0")
    check(tmp_path, "0.2.0")
    check(tmp_path, "0.3.0")
    with pytest.raises(DowngradeError, match=r"last used by Weightwarden 0\.2\.0, newer than this version 0\.1\.0"):
        check(tmp_path, "0.1.0")
    monkeypatch.setenv("WEIGHTWARDEN_ALLOW_DOWNGRADE", "1")
    check(tmp_path, "0.1.0")


def test_module_entry_point_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert version_stamp.main(["record", str(tmp_path), "0.5.0"]) == 0
    assert version_stamp.main(["check", str(tmp_path), "0.5.0"]) == 0
    assert version_stamp.main(["check", str(tmp_path), "0.4.0"]) == 1
    assert "refusing to downgrade" in capsys.readouterr().err
    assert version_stamp.main(["frobnicate"]) == 2


def test_the_agent_refuses_a_newer_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    major = int(__version__.split(".")[0])
    record(data, f"{major + 1}.0.0")
    monkeypatch.setenv("WEIGHTWARDEN_DATA_DIR", str(data))
    assert main(["agent", "--mode", "user"]) == 2
    err = capsys.readouterr().err
    assert "refusing to downgrade" in err and "Traceback" not in err
    assert not (data / "weightwarden.db").exists()  # refused before the store was opened
