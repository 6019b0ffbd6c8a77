"""Shared fixtures: real model files written by the real libraries, and a guard against leaked threads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Real Qt widgets, no screen: set before pytest-qt creates the session's QApplication.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """An agent full of threads must clean up after itself: fail the test that leaves one running."""
    before = set(threading.enumerate())
    yield
    deadline = 5.0
    leaked = []
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=deadline)
        if thread.is_alive() and not thread.daemon:
            leaked.append(thread.name)
    assert leaked == [], f"threads left running: {leaked}"


# Variables that move model caches or our own config and data: cleared for every test.
ENVIRONMENT_THAT_MOVES_FILES = (
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS",
    "TORCH_HOME", "WEIGHTWARDEN_CONFIG", "WEIGHTWARDEN_DATA_DIR",
)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME and XDG dirs, so no test reads or writes the real user's data."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var in ENVIRONMENT_THAT_MOVES_FILES:
        monkeypatch.delenv(var, raising=False)
    return home


def write_safetensors(path: Path, *, seed: int = 0, tensors: int = 3, rows: int = 64) -> Path:
    """A small real safetensors file (float32), distinct per seed."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    data = {f"layers.{i}.weight": rng.standard_normal((rows, 32)).astype(np.float32) for i in range(tensors)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(data, str(path), metadata={"format": "pt"})
    return path


@pytest.fixture
def safetensors_file(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "model.safetensors", **kwargs: int) -> Path:
        return write_safetensors(tmp_path / name, **kwargs)
    return make


def write_gguf(path: Path, *, name: str = "tiny-llama") -> Path:
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(256, dtype=np.float32).reshape(16, 16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def random_bytes_file(path: Path, size: int, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def can_read_unreadable_files() -> bool:
    """root (CI) reads files whatever their mode; permission tests adapt instead of lying."""
    return os.geteuid() == 0


@pytest.fixture(scope="session")
def osmem() -> Iterator[Any]:
    """One OpenSearch-compatible server (osmem-server, PyPI) for the whole run; tests take clones of it."""
    osmem_server = pytest.importorskip("osmem_server", reason="osmem-server is in the test extra")
    server = osmem_server.OsmemServer.start(japanese=False)
    try:
        yield server
    finally:
        server.close()
        if server.process.stdout is not None:  # osmem's close() leaves its stdout pipe open
            server.process.stdout.close()


@pytest.fixture
def cluster(osmem: Any) -> Iterator[str]:
    """The URL of an empty cluster of this test's own (a clone of the shared server)."""
    clone = osmem.clone()
    try:
        yield clone.url
    finally:
        clone.close()
