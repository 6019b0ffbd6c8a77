"""Files that share a signature or container with a model format, but are not models: rejected (None)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent.identify import builders
from tests.agent.identify.pread_log import PreadLog
from weightwarden.agent.identify import Identifier

LOOKALIKES: list[tuple[Callable[[Path], None], str]] = [
    (builders.generic_zip, "archive.zip"),
    (builders.docx_like_zip, "report.docx"),
    (builders.zip_with_folder_but_no_version, "model.pt"),
    (builders.zip_of_npy_with_wrong_magic, "arrays.npz"),
    (builders.hdf5_plain_data, "data.h5"),
    (builders.json_text, "model.safetensors.index.json"),
    (builders.text_starting_with_gguf, "README.gguf"),
    (builders.random_bytes, "model.safetensors"),
    (builders.truncated_safetensors, "model.safetensors"),
    (builders.empty_file, "model.safetensors"),
    (builders.pickle_header_then_noise, "model.pkl"),
    (builders.pickle_plain_data, "model.pkl"),
    (builders.gzip_text, "model.joblib"),
    (builders.zlib_plain_pickle, "model.joblib"),
    (builders.random_with_flatbuffer_identifier, "model.tflite"),
    (builders.plain_tar, "model.nemo"),
    (builders.svg_xml, "model.xml"),
    (builders.zip_with_config_json_only, "model.keras"),
    (builders.text_starting_with_lmgg, "model.bin"),
    (builders.text_starting_with_wwseal, "model.sealed"),
    (builders.sealed_file_with_a_byte_cut, "model.safetensors"),
]


@pytest.mark.parametrize(("build", "name"), LOOKALIKES, ids=[build.__name__ for build, _ in LOOKALIKES])
def test_lookalike_is_rejected(identifier: Identifier, tmp_path: Path, build: Callable[[Path], None],
                               name: str) -> None:
    path = tmp_path / name
    build(path)

    assert identifier.identify_path(str(path)) is None


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_coreml_protobuf_is_coreml_not_onnx(identifier: Identifier, tmp_path: Path) -> None:
    # coremltools is not a test dependency, so the Model message is assembled by hand: specificationVersion
    # (field 1), description (field 2), then a model type field (>= 200), as CoreML writes it.
    path = tmp_path / "model.mlmodel"
    path.write_bytes(b"\x08\x05" + _field(2, b"\x0a\x03abc") + _field(403, b"\x0a\x00" * 8))

    result = identifier.identify_path(str(path))

    assert result is not None
    assert (result.format, result.details["model_type_field"]) == ("coreml", 403)


def test_protobuf_without_a_model_type_field_is_nothing(identifier: Identifier, tmp_path: Path) -> None:
    path = tmp_path / "message.pb"
    path.write_bytes(b"\x08\x05" + _field(2, b"\x0a\x03abc") + _field(3, b"\x0a\x00" * 8))

    assert identifier.identify_path(str(path)) is None


def test_empty_file_is_not_read(identifier: Identifier, tmp_path: Path, pread_log: PreadLog) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"")

    assert identifier.identify_path(str(path)) is None
    assert pread_log.calls == []
