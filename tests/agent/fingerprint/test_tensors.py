"""Tensor fingerprints: the same tensors give the same prints in every container, shard layout and float
dtype, taken in the single pass that also yields the SHA-256; other tensors give other prints."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hypothesis_numpy

from tests.agent.fingerprint import writers
from weightwarden.agent.events import TensorPrint
from weightwarden.agent.fingerprint import hash_with_tensors
from weightwarden.agent.fingerprint.layouts import tensor_spans
from weightwarden.agent.fingerprint.tensors import SAMPLES, fingerprint_array, sample_by_reads
from weightwarden.agent.identify import Identifier

TENSORS = writers.model_tensors(seed=0)
INFORMATIVE = {name for name in TENSORS if "norm" not in name and "bias" not in name}


def prints_of(path: Path, identifier: Identifier) -> tuple[str, tuple[TensorPrint, ...]]:
    found = identifier.identify_path(str(path))
    assert found is not None
    fd = os.open(path, os.O_RDONLY)
    try:
        return hash_with_tensors(fd, os.fstat(fd).st_size, found.format, block_size=4096)
    finally:
        os.close(fd)


def fingerprints(prints: tuple[TensorPrint, ...]) -> set[str]:
    return {p.fingerprint for p in prints}


EXPECTED = {fingerprint_array(value).fingerprint for value in TENSORS.values()}

# Each: how the file is written from TENSORS, and the format it must be identified as.
TRANSFORMS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("safetensors-f32", lambda d: writers.safetensors(d / "model.safetensors", TENSORS), "safetensors"),
    ("safetensors-f16", lambda d: writers.safetensors_torch_dtype(d / "m.safetensors", TENSORS, "float16"),
     "safetensors"),
    ("safetensors-bf16", lambda d: writers.safetensors_torch_dtype(d / "m.safetensors", TENSORS, "bfloat16"),
     "safetensors"),
    ("torch-zip-f32", lambda d: writers.torch_zip(d / "pytorch_model.bin", TENSORS), "pytorch-zip"),
    ("torch-zip-bf16", lambda d: writers.torch_zip(d / "model.pt", TENSORS, "bfloat16"), "pytorch-zip"),
    ("torch-zip-f16", lambda d: writers.torch_zip(d / "model.pt", TENSORS, "float16"), "pytorch-zip"),
    ("npz-f32", lambda d: writers.npz(d / "weights.npz", TENSORS), "numpy-npz"),
    ("npz-f16", lambda d: writers.npz(d / "weights.npz", TENSORS, np.float16), "numpy-npz"),
    ("gguf-f32", lambda d: writers.gguf_file(d / "model.gguf", TENSORS), "gguf"),
    ("gguf-f16", lambda d: writers.gguf_file(d / "model.gguf", TENSORS, np.float16), "gguf"),
]


@pytest.mark.parametrize(("write", "format_id"), [t[1:] for t in TRANSFORMS], ids=[t[0] for t in TRANSFORMS])
def test_every_container_and_dtype_gives_the_same_prints(tmp_path: Path, identifier: Identifier,
                                                          write: Callable[[Path], Path], format_id: str) -> None:
    path = write(tmp_path)
    renamed = path.rename(tmp_path / "notes.txt")  # the name never matters

    assert identifier.identify_path(str(renamed)).format == format_id  # type: ignore[union-attr]
    digest, prints = prints_of(renamed, identifier)

    assert digest == hashlib.sha256(renamed.read_bytes()).hexdigest()
    assert fingerprints(prints) == EXPECTED
    assert len(prints) == len(TENSORS)
    assert {p.elements for p in prints} == {v.size for v in TENSORS.values()}
    informative = {p.fingerprint for p in prints if p.informative}
    assert informative == {fingerprint_array(TENSORS[n]).fingerprint for n in INFORMATIVE}


def test_reshard_into_three_and_back(tmp_path: Path, identifier: Identifier) -> None:
    shard_paths = writers.shards(tmp_path / "sharded", TENSORS, 3)
    shard_prints = [prints_of(p, identifier)[1] for p in shard_paths]
    merged = writers.safetensors(tmp_path / "merged.safetensors",
                                 {k: v for p in shard_paths for k, v in _load(p).items()})

    assert set().union(*map(fingerprints, shard_prints)) == EXPECTED
    informative = [{p.fingerprint for p in prints if p.informative} for prints in shard_prints]
    assert sum(map(len, informative)) == len(set().union(*informative)) == len(INFORMATIVE_PRINTS)
    assert fingerprints(prints_of(merged, identifier)[1]) == EXPECTED


INFORMATIVE_PRINTS = {fingerprint_array(TENSORS[n]).fingerprint for n in INFORMATIVE}


def _load(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_other_weights_of_the_same_shapes_differ(tmp_path: Path, identifier: Identifier) -> None:
    other = writers.model_tensors(seed=1)
    _, prints = prints_of(writers.safetensors(tmp_path / "other.safetensors", other), identifier)

    informative = {p.fingerprint for p in prints if p.informative}
    assert informative and informative.isdisjoint(EXPECTED)
    # Norm scales (all ones) and zero biases are the same in both: shared, but never informative.
    assert {p.fingerprint for p in prints if not p.informative} <= EXPECTED


def test_fine_tuned_or_perturbed_values_break_the_print_of_changed_tensors_only(tmp_path: Path,
                                                                               identifier: Identifier) -> None:
    changed = dict(TENSORS)
    changed["embed.weight"] = -TENSORS["embed.weight"]
    _, prints = prints_of(writers.safetensors(tmp_path / "m.safetensors", changed), identifier)

    assert EXPECTED - fingerprints(prints) == {fingerprint_array(TENSORS["embed.weight"]).fingerprint}


def test_shape_is_part_of_the_print() -> None:
    values = np.random.default_rng(3).standard_normal(96 * 48).astype(np.float32)

    assert fingerprint_array(values.reshape(96, 48)) != fingerprint_array(values.reshape(48, 96))


def test_huge_tensor_is_sampled_not_read_whole() -> None:
    values = np.random.default_rng(4).standard_normal(SAMPLES * 10).astype(np.float32)
    tail_changed = values.copy()
    tail_changed[1::10] *= -1  # elements between the sampled ones

    assert fingerprint_array(values).fingerprint == fingerprint_array(tail_changed).fingerprint


def test_one_pass_reads_each_tensor_byte_once(tmp_path: Path, identifier: Identifier,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = writers.torch_zip(tmp_path / "model.pt", writers.model_tensors(seed=5, width=256))
    found = identifier.identify_path(str(path))
    assert found is not None
    size = path.stat().st_size
    read: list[int] = []
    real_pread, real_preadv = os.pread, os.preadv

    def pread(fd: int, length: int, offset: int) -> bytes:
        data = real_pread(fd, length, offset)
        read.append(len(data))
        return data

    def preadv(fd: int, buffers: list[bytearray], offset: int) -> int:
        count = real_preadv(fd, buffers, offset)
        read.append(count)
        return count

    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "preadv", preadv)
    fd = os.open(path, os.O_RDONLY)
    try:
        digest, prints = hash_with_tensors(fd, size, found.format, block_size=1 << 16)
    finally:
        os.close(fd)

    assert len(prints) == 17 and digest == hashlib.sha256(path.read_bytes()).hexdigest()
    # One full pass plus the layout: the zip tail (64 KiB at most) and data.pkl, not a second pass.
    assert size < sum(read) < size + (64 << 10) + 8192
    assert size > 1 << 20


def test_reading_samples_directly_gives_the_same_prints(tmp_path: Path, identifier: Identifier) -> None:
    path = writers.gguf_file(tmp_path / "model.gguf", TENSORS, np.float16)
    fd = os.open(path, os.O_RDONLY)
    try:
        prints = sample_by_reads(fd, tensor_spans(fd, path.stat().st_size, "gguf"), path.stat().st_size)
    finally:
        os.close(fd)

    assert fingerprints(prints) == EXPECTED


def test_non_contiguous_torch_view_is_left_out(tmp_path: Path, identifier: Identifier) -> None:
    torch = pytest.importorskip("torch")

    path = tmp_path / "model.pt"
    weight = torch.from_numpy(TENSORS["layers.0.attn.weight"])
    torch.save({"w": weight, "wt": weight.t()}, path)

    _, prints = prints_of(path, identifier)

    assert fingerprints(prints) == {fingerprint_array(TENSORS["layers.0.attn.weight"]).fingerprint}


def test_compressed_npz_has_no_prints_but_still_a_hash(tmp_path: Path, identifier: Identifier) -> None:
    path = tmp_path / "weights.npz"
    with path.open("wb") as handle:
        np.savez_compressed(handle, w=TENSORS["embed.weight"])

    digest, prints = prints_of(path, identifier)

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() and prints == ()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(values=hypothesis_numpy.arrays(np.float32, hypothesis_numpy.array_shapes(min_dims=1, max_dims=3, max_side=40),
                                      elements=st.floats(-1e6, 1e6, width=32)))
def test_casts_never_change_the_print(values: np.ndarray) -> None:
    expected = fingerprint_array(values).fingerprint

    with np.errstate(over="ignore"):  # past float16's range values become ±inf: the sign stays
        assert fingerprint_array(values.astype(np.float16)).fingerprint == expected
    assert fingerprint_array(values.astype(np.float64)).fingerprint == expected
    torch = pytest.importorskip("torch")
    as_bf16 = torch.from_numpy(values).to(torch.bfloat16).to(torch.float32).numpy()
    assert fingerprint_array(as_bf16).fingerprint == expected


def test_big_endian_gguf_gives_the_same_prints(tmp_path: Path, identifier: Identifier) -> None:
    import gguf

    path = tmp_path / "be.gguf"
    writer = gguf.GGUFWriter(str(path), "llama", endianess=gguf.GGUFEndian.BIG)
    for name, value in TENSORS.items():
        writer.add_tensor(name, value.copy())  # the writer byte-swaps in place
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    assert fingerprints(prints_of(path, identifier)[1]) == EXPECTED
