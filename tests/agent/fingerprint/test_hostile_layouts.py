"""Hostile headers cost the tensor layout parsers bounded memory and time: they give no spans, never raise."""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
import zipfile
from pathlib import Path

import numpy as np

from weightwarden.agent.fingerprint.layouts import tensor_spans
from weightwarden.agent.fingerprint.tensors import TensorSampler, TensorSpan

BUDGET = 3.0  # seconds, generous: CI shares two cores with other suites


def spans_of(path: Path, format_id: str) -> list[TensorSpan]:
    fd = os.open(path, os.O_RDONLY)
    started = time.monotonic()
    try:
        return tensor_spans(fd, path.stat().st_size, format_id)
    finally:
        os.close(fd)
        assert time.monotonic() - started < BUDGET


def test_gguf_claiming_2_40_tensors(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0) + b"\0" * 4096)
    assert spans_of(path, "gguf") == []


def test_gguf_tensor_infos_claiming_huge_strings(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2, 0) + struct.pack("<Q", 1 << 62) + b"\0" * 64)
    assert spans_of(path, "gguf") == []


def test_safetensors_header_claiming_2_63_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 63) + b'{"a": {}}' + b"\0" * 4096)
    assert spans_of(path, "safetensors") == []


def test_safetensors_tensor_claiming_more_than_the_file(tmp_path: Path) -> None:
    header = b'{"w": {"dtype": "F32", "shape": [1099511627776], "data_offsets": [0, 4398046511104]}}'
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    spans = spans_of(path, "safetensors")
    sampler = TensorSampler(spans, path.stat().st_size)  # the sampler drops spans past the end
    assert sampler.skipped == len(spans) and sampler.prints() == ()


def _torch_like_zip(path: Path, pickled: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("m/data.pkl", pickled)
        archive.writestr("m/version", "3")
        archive.writestr("m/data/0", b"\0" * 64)


def test_deeply_nested_pickle(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _torch_like_zip(path, b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b".")
    assert spans_of(path, "pytorch-zip") == []


def test_endless_pickle_without_stop(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _torch_like_zip(path, b"\x80\x02" + b"K\x01" * 500_000)
    assert spans_of(path, "pytorch-zip") == []


def test_pickle_that_would_run_code_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "model.pt"
    _torch_like_zip(path, pickle.dumps({"w": Exploit()}, protocol=2))
    assert spans_of(path, "pytorch-zip") == []
    assert not marker.exists()


def test_npz_member_claiming_a_terabyte(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ones(4, dtype=np.float32))
    array = bytearray(buffer.getvalue())
    # Rewrite the shape in the .npy header to 2^40 elements, as long as the file is not.
    header = array[10:10 + array[8]].decode("latin1").replace("(4,)", f"({1 << 40},)".ljust(4))
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", bytes(array[:10]) + header.encode("latin1")[:array[8]] + bytes(array[10 + array[8]:]))
    assert spans_of(path, "numpy-npz") == []


def test_archive_inside_archive_inside_archive_is_not_opened(tmp_path: Path) -> None:
    inner = io.BytesIO()
    np.savez(inner, w=np.ones(8, dtype=np.float32))
    for _ in range(2):
        outer = io.BytesIO()
        with zipfile.ZipFile(outer, "w") as archive:
            archive.writestr("inner.npz", inner.getvalue())
        inner = outer
    path = tmp_path / "nested.npz"
    path.write_bytes(inner.getvalue())
    assert spans_of(path, "numpy-npz") == [] and spans_of(path, "pytorch-zip") == []
