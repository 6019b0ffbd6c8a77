from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import random_bytes_file
from weightwarden.agent.fingerprint import FileChangedError, is_sparse, quick_fingerprint, sha256_fd
from weightwarden.agent.fingerprint.quick import SAMPLE_BYTES, SAMPLES, sample_offsets
from weightwarden.agent.safe_open import regular_file


def sha(path: Path, **kwargs: int) -> str:
    with regular_file(str(path)) as (fd, info):
        return sha256_fd(fd, info.st_size, **kwargs)


def quick(path: Path) -> str:
    with regular_file(str(path)) as (fd, info):
        return quick_fingerprint(fd, info.st_size)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 5 * 1024 * 1024 + 7])
def test_sha256_matches_hashlib_and_sha256sum(tmp_path: Path, size: int) -> None:
    path = random_bytes_file(tmp_path / "f", size)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha(path, block_size=1 << 20) == expected
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0] == expected


def test_sha256_feeds_every_block_to_a_rider(tmp_path: Path) -> None:
    path = random_bytes_file(tmp_path / "f", 3 * 65536 + 11)
    seen = bytearray()
    with regular_file(str(path)) as (fd, info):
        sha256_fd(fd, info.st_size, block_size=65536, on_block=seen.extend)
    assert bytes(seen) == path.read_bytes()


def test_sha256_refuses_a_file_that_changed_size(tmp_path: Path) -> None:
    path = random_bytes_file(tmp_path / "f", 100_000)
    with regular_file(str(path)) as (fd, info):
        os.truncate(path, 50_000)
        with pytest.raises(FileChangedError, match="shrank"):
            sha256_fd(fd, info.st_size)


def test_sha256_of_a_file_deleted_while_open_still_describes_its_bytes(tmp_path: Path) -> None:
    path = random_bytes_file(tmp_path / "f", 200_000)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    with regular_file(str(path)) as (fd, info):
        path.unlink()
        assert sha256_fd(fd, info.st_size) == expected


def test_quick_fingerprint_recognises_a_copy_and_tells_small_changes_apart(tmp_path: Path) -> None:
    original = random_bytes_file(tmp_path / "a", 10 << 20)
    copy = tmp_path / "b"
    shutil.copyfile(original, copy)
    assert quick(original) == quick(copy)
    data = bytearray(original.read_bytes())
    data[sample_offsets(len(data))[5] + 10] ^= 0xFF  # inside a sampled block
    changed = tmp_path / "c"
    changed.write_bytes(bytes(data))
    assert quick(changed) != quick(original)
    longer = tmp_path / "d"
    longer.write_bytes(original.read_bytes() + b"\0")
    assert quick(longer) != quick(original)


def test_quick_fingerprint_of_a_small_file_covers_every_byte(tmp_path: Path) -> None:
    a = random_bytes_file(tmp_path / "a", 1000)
    b = tmp_path / "b"
    b.write_bytes(a.read_bytes()[:500] + b"X" + a.read_bytes()[501:])
    assert quick(a) != quick(b)
    assert quick(a).startswith("q1:")


def test_quick_fingerprint_reads_a_fixed_amount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sparse = tmp_path / "huge.safetensors"
    with open(sparse, "wb") as handle:
        handle.truncate(100 << 30)  # 100 GiB of holes
    read = 0
    real_pread = os.pread

    def counting(fd: int, length: int, offset: int) -> bytes:
        nonlocal read
        chunk = real_pread(fd, length, offset)
        read += len(chunk)
        return chunk

    monkeypatch.setattr(os, "pread", counting)
    assert quick(sparse).startswith("q1:")
    assert read == SAMPLES * SAMPLE_BYTES


def test_sparse_files_are_recognised(tmp_path: Path) -> None:
    sparse = tmp_path / "s"
    with open(sparse, "wb") as handle:
        handle.truncate(1 << 30)
    dense = random_bytes_file(tmp_path / "d", 1 << 20)
    assert is_sparse(os.stat(sparse))
    assert not is_sparse(os.stat(dense))
