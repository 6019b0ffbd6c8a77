"""Property-based: whatever bytes a file holds (mutations and truncations of real model files, and pure
noise behind each format's magic), identification and the tensor layout parsers raise nothing, stay within
the window plus bounded reads, and finish within a fixed time budget."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.agent.fingerprint import writers
from tests.agent.identify import builders, model_dirs
from weightwarden.agent.fingerprint.layouts import LAYOUTS, tensor_spans
from weightwarden.agent.identify import Identifier

TIME_BUDGET = 1.0  # seconds for one identification of a small file, generous for a loaded CI machine
SEEDS: list[Callable[[Path], object]] = [
    builders.safetensors_file, builders.gguf_file, builders.pytorch_zip, builders.numpy_npz,
    builders.numpy_npy, builders.pickle_of_arrays, builders.onnx_model, builders.joblib_zlib,
    builders.keras_h5, builders.keras_v3, builders.tflite_flatbuffer, builders.nemo_archive,
    builders.openvino_ir, builders.ggjt_v3, builders.joblib_dump,
    lambda p: writers.torch_zip(p, writers.model_tensors(layers=1, width=8)),
    lambda p: writers.gguf_file(p, writers.model_tensors(layers=1, width=8)),
    model_dirs.saved_model_pb, model_dirs.flax_msgpack, lambda p: model_dirs.flax_msgpack(p, chunked=True),
    model_dirs.paddle_pdmodel, model_dirs.paddle_pdparams,
    lambda p: p.write_bytes(model_dirs.leveldb_table([(b"", b"\x08\x01\x1a\x02\x08\x01"), (b"w", b"\x08\x01")])),
    lambda p: p.write_bytes((model_dirs.mlpackage(p.parent / "seed.mlpackage") / "Manifest.json").read_bytes()),
]
IDENTIFIER = Identifier(window_bytes=64 << 10, tail_bytes=16 << 10)


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("seeds")
    files = []
    for index, build in enumerate(SEEDS):
        path = folder / f"seed{index}"
        build(path)
        files.append(path.read_bytes())
    return files


def examine(data: bytes) -> None:
    """Identify the bytes as a file and parse every tensor layout of them: nothing may escape."""
    with tempfile.NamedTemporaryFile(prefix="ww-prop-") as handle:
        handle.write(data)
        handle.flush()
        started = time.monotonic()
        found = IDENTIFIER.identify_path(handle.name)
        fd = os.open(handle.name, os.O_RDONLY)
        try:
            for format_id in LAYOUTS:
                tensor_spans(fd, len(data), format_id)
        finally:
            os.close(fd)
        assert time.monotonic() - started < TIME_BUDGET
    if found is not None:
        assert isinstance(found.details, dict)


@st.composite
def mutations(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        data[position:position + 8] = draw(st.binary(min_size=1, max_size=8))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))):]
    return bytes(data)


PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(data=st.data())
def test_mutated_model_files_never_raise(seed_files: list[bytes], data: st.DataObject) -> None:
    examine(data.draw(mutations(seed_files)))


MAGICS = [b"", b"GGUF\x03\x00\x00\x00", b"PK\x03\x04", b"\x80\x04\x95", b"\x93NUMPY\x01\x00", b"\x89HDF\r\n\x1a\n",
          b"\x08\x07\x12", b"lmgg", b"tjgg\x03\x00\x00\x00", b"\x1c\x00\x00\x00TFL3", b"x\x9c", b"\x1f\x8b",
          b"<?xml version='1.0'?><net ", b"\x00\x01\x00\x00\x00\x00\x00\x00{",
          b"\x08\x01\x12", b"\x00\x00\x06\x08\x01", b"\x0a\x30\x08\x00\x10" + b"\xff" * 9 + b"\x01",
          b"\x81\xa6params\xc7", b'{"itemInfoEntries": {}, "rootModelIdentifier": "com.apple.CoreML"']


@PROPERTY_SETTINGS
@given(magic=st.sampled_from(MAGICS), rest=st.binary(max_size=4096))
def test_noise_behind_every_magic_never_raises(magic: bytes, rest: bytes) -> None:
    examine(magic + rest)
