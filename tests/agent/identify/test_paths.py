"""identify_path never blocks, never follows links, and lets OS errors reach the caller."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agent.identify import builders
from weightwarden.agent.identify import Identifier
from weightwarden.agent.safe_open import NotRegularFile


def test_fifo_without_writer_is_refused_not_waited_on(identifier: Identifier, tmp_path: Path) -> None:
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)

    with pytest.raises(NotRegularFile):
        identifier.identify_path(str(fifo))


def test_symlink_is_not_followed(identifier: Identifier, tmp_path: Path) -> None:
    target = tmp_path / "real.safetensors"
    builders.safetensors_file(target)
    link = tmp_path / "link.safetensors"
    link.symlink_to(target)

    with pytest.raises(NotRegularFile):
        identifier.identify_path(str(link))


def test_directory_is_refused(identifier: Identifier, tmp_path: Path) -> None:
    with pytest.raises(NotRegularFile):
        identifier.identify_path(str(tmp_path))


def test_missing_file_raises_os_error(identifier: Identifier, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        identifier.identify_path(str(tmp_path / "gone.safetensors"))


def test_identify_fd_on_an_open_file(identifier: Identifier, tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    builders.gguf_file(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        result = identifier.identify_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)

    assert result is not None and result.format == "gguf"


def test_file_that_shrank_after_fstat_is_not_an_error(identifier: Identifier, tmp_path: Path) -> None:
    # The size comes from fstat; the file may be truncated before the window is read.
    path = tmp_path / "model.safetensors"
    builders.safetensors_file(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        os.truncate(path, 20)
        result = identifier.identify_fd(fd, size)
    finally:
        os.close(fd)

    assert result is None


def test_invalid_window_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="window_bytes"):
        Identifier(window_bytes=0)
