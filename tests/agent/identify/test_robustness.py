"""Damaged and concurrent input: checks never raise on malformed bytes, and identification is thread-safe."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.agent.identify import builders
from weightwarden.agent.identify import Identification, Identifier

SEEDS: list[Callable[[Path], None]] = [
    builders.safetensors_file, builders.gguf_file, builders.gguf_big_endian, builders.numpy_npy,
    builders.numpy_npz, builders.pickle_of_arrays, builders.onnx_model, builders.pytorch_zip,
]
MUTATIONS_PER_SEED = 150


def _identify_bytes(identifier: Identifier, path: Path, data: bytes) -> Identification | None:
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return identifier.identify_fd(fd, len(data))
    finally:
        os.close(fd)


@pytest.mark.parametrize("build", SEEDS, ids=[build.__name__ for build in SEEDS])
def test_damaged_files_never_raise(identifier: Identifier, tmp_path: Path, build: Callable[[Path], None]) -> None:
    original = tmp_path / "original"
    build(original)
    data = original.read_bytes()
    rng = np.random.default_rng(20240601)
    target = tmp_path / "damaged"
    for _ in range(MUTATIONS_PER_SEED):
        damaged = bytearray(data)
        kind = rng.integers(3)
        if kind == 0:  # overwrite a few bytes near the start (headers) or the end (zip directories)
            for _ in range(rng.integers(1, 4)):
                zone = rng.integers(min(len(data), 256)) if rng.integers(2) else len(data) - 1 - rng.integers(
                    min(len(data), 256))
                damaged[zone] = rng.integers(256)
        elif kind == 1:  # cut the file short
            del damaged[rng.integers(1, len(data)):]
        else:  # a run of 0xff: the largest lengths and counts
            start = rng.integers(len(data))
            damaged[start:start + 8] = b"\xff" * 8

        result = _identify_bytes(identifier, target, bytes(damaged))

        if result is not None:
            json.dumps(result.details)


def test_concurrent_identification_matches_sequential(identifier: Identifier, tmp_path: Path) -> None:
    paths = []
    for build in SEEDS:
        path = tmp_path / build.__name__
        build(path)
        paths.append(str(path))
    expected = [identifier.identify_path(path) for path in paths]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(identifier.identify_path, paths * 8))

    assert results == expected * 8
