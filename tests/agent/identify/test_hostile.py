"""Hostile headers cost bounded memory: they are rejected without reading (or allocating) past the window.

Each hostile file starts as a real library's output (so the unpatched file is identified: the control
assertion) and then has one length or offset patched to a lie. Reads are bounded by counting what
os.pread is asked for; there are no timing assertions.
"""

from __future__ import annotations

import pickle
import pickletools
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.agent.identify import builders
from tests.agent.identify.pread_log import PreadLog
from weightwarden.agent.identify import Identifier
from weightwarden.agent.identify.zip_directory import MAX_DIRECTORY_BYTES

WINDOW = 64 << 10
TAIL = 16 << 10
PADDING = 512 << 10  # every hostile file is larger than the window, so reads past it would show


@pytest.fixture(scope="module")
def small_window() -> Identifier:
    return Identifier(window_bytes=WINDOW, tail_bytes=TAIL)


def _patch(path: Path, offset: int, value: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + len(value)] = value
    path.write_bytes(bytes(data))


def _pad(path: Path) -> None:
    with path.open("ab") as handle:
        handle.write(b"\0" * PADDING)


def _safetensors(path: Path) -> None:
    builders.safetensors_file(path)
    _pad(path)


def _safetensors_header(path: Path, header: bytes) -> None:
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * PADDING)


def _gguf(path: Path) -> None:
    builders.gguf_file(path)
    _pad(path)


def _torch_like_zip(path: Path) -> None:
    """The PyTorch member layout, written with zipfile (classic end record, no ZIP64)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({"w": 0}))
        archive.writestr("model/data/0", b"\0" * PADDING)
        archive.writestr("model/version", "3\n")


def _eocd(path: Path) -> int:
    return path.read_bytes().rfind(b"PK\x05\x06")


def _torch_zip(path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(PADDING // 4)}, path)


def _zip64_eocd(path: Path) -> int:
    return path.read_bytes().rfind(b"PK\x06\x06")


def _npy(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, np.zeros(PADDING // 8))


def _big_pickle(path: Path) -> None:
    """An array pickle (plain data is not a model): numpy's globals first, then the data as one BINBYTES."""
    path.write_bytes(pickle.dumps(np.zeros(PADDING // 8), protocol=4))


def _data_opcode(path: Path) -> int:
    """Offset of the opcode that carries the array's bytes (pickle writes large bytes unframed)."""
    return next(position for opcode, _, position in pickletools.genops(path.read_bytes())
                if opcode.name in ("BINBYTES", "BINBYTES8"))


def _onnx(path: Path) -> None:
    builders.onnx_model(path, width=PADDING // 8)  # the graph (with its weights) ends past the window


# (name, builds the valid file, format of the valid file, patches it into a hostile one)
HOSTILE: list[tuple[str, Callable[[Path], None], str, Callable[[Path], None]]] = [
    ("safetensors_length_2_63", _safetensors, "safetensors",
     lambda p: _patch(p, 0, struct.pack("<Q", 1 << 63))),
    ("safetensors_length_99_999_999", _safetensors, "safetensors",
     lambda p: _patch(p, 0, struct.pack("<Q", 99_999_999))),
    ("safetensors_huge_shape", _safetensors, "safetensors",
     lambda p: _safetensors_header(p, b'{"t":{"dtype":"F32","shape":' + str([1 << 62] * 64).encode()
                                   + b',"data_offsets":[0,4]}}')),
    ("safetensors_deep_json", _safetensors, "safetensors",
     lambda p: _safetensors_header(p, b'{"t":' + b"[" * 20_000 + b"]" * 20_000 + b"}")),
    ("gguf_kv_count_2_60", _gguf, "gguf", lambda p: _patch(p, 16, struct.pack("<Q", 1 << 60))),
    ("gguf_key_length_2_63", _gguf, "gguf", lambda p: _patch(p, 24, struct.pack("<Q", 1 << 63))),
    ("gguf_string_value_longer_than_file", _gguf, "gguf",
     # first entry: key "general.architecture" (8 + 20 bytes at 24), type u32, then the string length
     lambda p: _patch(p, 24 + 8 + 20 + 4, struct.pack("<Q", 1 << 40))),
    ("gguf_array_count_2_61", _gguf, "gguf",
     lambda p: _patch(p, 24 + 8 + 20, struct.pack("<IIQ", 9, 0, 1 << 61))),
    ("gguf_string_array_count_2_40", _gguf, "gguf",
     lambda p: _patch(p, 24 + 8 + 20, struct.pack("<IIQ", 9, 8, 1 << 40))),
    ("zip_directory_past_eof", _torch_like_zip, "pytorch-zip",
     lambda p: _patch(p, _eocd(p) + 16, struct.pack("<I", 0xFFFFFFF0))),
    ("zip_directory_size_over_cap", _torch_like_zip, "pytorch-zip",
     lambda p: _patch(p, _eocd(p) + 12, struct.pack("<I", 0x7FFFFFFF))),
    ("zip64_locator_past_eof", _torch_zip, "pytorch-zip",
     lambda p: _patch(p, _eocd(p) - 20 + 8, struct.pack("<Q", 1 << 62))),
    ("zip64_directory_size_2_40", _torch_zip, "pytorch-zip",
     lambda p: _patch(p, _zip64_eocd(p) + 40, struct.pack("<Q", 1 << 40))),
    ("zip64_directory_offset_2_63", _torch_zip, "pytorch-zip",
     lambda p: _patch(p, _zip64_eocd(p) + 48, struct.pack("<Q", 1 << 63))),
    ("npy_header_length_2_32", _npy, "numpy-npy",
     lambda p: _patch(p, 6, b"\x02\x00" + struct.pack("<I", 0xFFFFFFFF))),
    ("onnx_graph_length_2_60", _onnx, "onnx",
     lambda p: _patch(p, p.read_bytes().index(b"\x3a", 4), b"\x3a" + b"\xff" * 8 + b"\x10")),
    ("pickle_binbytes8_2_62", _big_pickle, "pickle",
     # the array's BINBYTES length becomes a BINBYTES8 lie
     lambda p: _patch(p, _data_opcode(p), b"\x8e" + struct.pack("<Q", 1 << 62))),
]


@pytest.mark.parametrize(("build", "valid_format", "make_hostile"), [case[1:] for case in HOSTILE],
                         ids=[case[0] for case in HOSTILE])
def test_hostile_header_is_rejected_within_the_window(
        small_window: Identifier, tmp_path: Path, pread_log: PreadLog, build: Callable[[Path], None],
        valid_format: str, make_hostile: Callable[[Path], None]) -> None:
    path = tmp_path / "model.bin"
    build(path)
    control = small_window.identify_path(str(path))
    assert control is not None and control.format == valid_format
    make_hostile(path)
    pread_log.calls.clear()

    assert small_window.identify_path(str(path)) is None
    assert pread_log.requested <= WINDOW + TAIL


def test_window_never_exceeds_window_bytes_on_50_mb_safetensors(
        identifier: Identifier, tmp_path: Path, pread_log: PreadLog) -> None:
    path = tmp_path / "big.safetensors"
    builders.safetensors_large(path, megabytes=50)
    pread_log.calls.clear()

    result = identifier.identify_path(str(path))

    assert result is not None and result.format == "safetensors"
    assert pread_log.requested <= identifier.window_bytes
    assert all(offset + length <= identifier.window_bytes for offset, length in pread_log.calls)


def test_header_beyond_a_small_window_is_read_once_up_to_its_length(tmp_path: Path, pread_log: PreadLog) -> None:
    path = tmp_path / "model.safetensors"
    builders.safetensors_file(path)
    header_length = struct.unpack("<Q", path.read_bytes()[:8])[0]
    tiny = Identifier(window_bytes=64)
    pread_log.calls.clear()

    result = tiny.identify_path(str(path))

    assert result is not None and result.format == "safetensors"
    assert pread_log.requested <= 64 + header_length


def test_large_gguf_vocabulary_reads_only_the_window(identifier: Identifier, tmp_path: Path,
                                                     pread_log: PreadLog) -> None:
    path = tmp_path / "vocab.gguf"
    builders.gguf_large_vocabulary(path)
    pread_log.calls.clear()

    result = identifier.identify_path(str(path))

    assert result is not None and result.details["kv_truncated"] is True
    assert pread_log.requested <= identifier.window_bytes


def test_zip_directory_outside_the_tail_is_read_with_one_bounded_pread(tmp_path: Path,
                                                                       pread_log: PreadLog) -> None:
    path = tmp_path / "model.pt"
    builders.pytorch_zip_many_tensors(path)
    small = Identifier(window_bytes=4096, tail_bytes=4096)
    pread_log.calls.clear()

    result = small.identify_path(str(path))

    assert result is not None and result.details["storage_count"] == 2000
    directory_reads = [length for offset, length in pread_log.calls if length > 4096]
    assert len(directory_reads) == 1
    assert pread_log.requested <= 4096 + 4096 + MAX_DIRECTORY_BYTES
