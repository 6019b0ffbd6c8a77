"""whisper.cpp's ggml files: speech models (whisper, parakeet), the voice-activity-detection model (silero)
and the speaker-embedding model, written per the layout of its converters (whisper_files.py: there is no
writer on PyPI). Hostile variants are cut short or carry lying counts: named with the issue, or not a model;
never an exception, never a read past the window."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.agent.identify import whisper_files
from tests.agent.identify.found_details import details_of, subset
from tests.agent.identify.pread_log import PreadLog
from weightwarden.agent.identify import Identifier, ggml_check

COMMON = {"format": "ggml", "variant": "ggml", "version": None, "session_state": False, "adapter": False}
CASES: list[tuple[Callable[[Path], None], dict[str, object]]] = [
    (whisper_files.whisper_model, {"model": "whisper", "n_vocab": 51865, "n_audio_state": 384, "n_mels": 80,
                                   "ftype": 1, "quantization_version": 0,
                                   "first_tensor": "encoder.positional_embedding"}),
    (whisper_files.whisper_quantized, {"model": "whisper", "ftype": 8, "quantization_version": 2}),
    (whisper_files.whisper_large_vocabulary, {"model": "whisper", "tokens_walked": 4096, "first_tensor": None}),
    (whisper_files.parakeet_model, {"model": "parakeet", "n_mels": 128, "n_audio_layer": 24,
                                    "first_tensor": "encoder.pre_encode.conv.0.weight"}),
    (whisper_files.silero_vad, {"model": "silero-16k", "model_version": "5.1.2", "encoder_layers": 4,
                                "window_size": 512, "first_tensor": "_model.encoder.0.reparam_conv.weight"}),
    (whisper_files.speaker_model, {"model": "spkrec-ecapa-tdnn", "model_version": "1.0.0", "embedding_dim": 192,
                                   "first_tensor": "mods.embedding_model.blocks.0.conv.conv.weight"}),
]
IDS = [case[0].__name__ for case in CASES]




@pytest.mark.parametrize("name", ["ggml-tiny.bin", "ggml-silero-v5.1.2.bin", "model", "notes.txt"])
@pytest.mark.parametrize(("build", "expected"), CASES, ids=IDS)
def test_whisper_cpp_files_are_found_by_content(identifier: Identifier, tmp_path: Path, name: str,
                                                build: Callable[[Path], None], expected: dict[str, object]) -> None:
    build(tmp_path / name)

    found = identifier.identify_path(str(tmp_path / name))

    subset(found, COMMON | expected)
    assert "malformed" not in details_of(found) and "header_truncated" not in details_of(found)


def test_llama_style_ggml_keeps_its_own_details(identifier: Identifier, tmp_path: Path) -> None:
    from tests.agent.identify import builders

    builders.ggml_legacy(tmp_path / "ggml-model-f16.bin")

    details = details_of(identifier.identify_path(str(tmp_path / "ggml-model-f16.bin")))
    assert details["n_vocab"] == 32000 and "model" not in details


# ---------------------------------------------------------------- hostile


def _patched(build: Callable[[Path], None], path: Path, offset: int, value: bytes) -> Path:
    build(path)
    data = bytearray(path.read_bytes())
    data[offset:offset + len(value)] = value
    path.write_bytes(bytes(data))
    return path


_MEL_END = 4 + 11 * 4 + 8 + 80 * whisper_files.N_FFT_BINS * 4  # whisper: where the vocabulary count lies
_HUGE = struct.pack("<i", 0x7FFFFFFF)
_NEGATIVE = struct.pack("<i", -5)
_SILERO_LAYERS = 4 + 4 + len("silero-16k") + 12 + 8  # the encoder layer count
_SILERO_FIRST_TENSOR = _SILERO_LAYERS + 4 + 4 * 3 * 4 + 16

MALFORMED = [
    ("vocabulary_count_huge", whisper_files.whisper_model, _MEL_END, _HUGE, "vocabulary count 2147483647"),
    ("vocabulary_count_negative", whisper_files.whisper_model, _MEL_END, _NEGATIVE, "vocabulary count -5"),
    ("token_length_huge", whisper_files.whisper_model, _MEL_END + 4, _HUGE, "token length 2147483647"),
    ("silero_layers_huge", whisper_files.silero_vad, _SILERO_LAYERS, _HUGE, "encoder layer count 2147483647"),
    ("silero_tensor_dims", whisper_files.silero_vad, _SILERO_FIRST_TENSOR, _HUGE, "tensor with 2147483647 dimensions"),
    ("silero_tensor_name", whisper_files.silero_vad, _SILERO_FIRST_TENSOR + 4, _HUGE,
     "tensor name length 2147483647"),
    ("silero_tensor_type", whisper_files.silero_vad, _SILERO_FIRST_TENSOR + 8, _HUGE, "tensor type 2147483647"),
]


@pytest.mark.parametrize(("build", "offset", "value", "reason"), [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_a_lying_count_is_named_and_costs_nothing(tmp_path: Path, pread_log: PreadLog,
                                                  build: Callable[[Path], None], offset: int, value: bytes,
                                                  reason: str) -> None:
    path = _patched(build, tmp_path / "model.bin", offset, value)
    small = Identifier(window_bytes=64 << 10, tail_bytes=0)

    assert details_of(small.identify_path(str(path)))["malformed"] == reason
    assert pread_log.requested <= 64 << 10


@pytest.mark.parametrize(("build", "expected"), CASES, ids=IDS)
def test_every_cut_is_named_rejected_or_header_only(identifier: Identifier, tmp_path: Path,
                                                    build: Callable[[Path], None], expected: dict[str, object]
                                                    ) -> None:
    build(tmp_path / "full.bin")
    data = (tmp_path / "full.bin").read_bytes()
    for cut in sorted({*range(0, 200, 3), *range(200, len(data), max(1, len(data) // 97))}):
        (tmp_path / "cut.bin").write_bytes(data[:cut])
        found = identifier.identify_path(str(tmp_path / "cut.bin"))
        if found is None:
            continue
        details = details_of(found)
        if details.get("model") == expected["model"]:
            assert "malformed" in details or "first_tensor" in details or "tokens_walked" in details, cut


def test_a_small_window_stops_the_walk_without_reading_on(tmp_path: Path, pread_log: PreadLog) -> None:
    whisper_files.whisper_model(tmp_path / "ggml-small.bin", n_vocab=3000)  # ~30 KiB of tokens
    small = Identifier(window_bytes=32 << 10, tail_bytes=0)

    subset(small.identify_path(str(tmp_path / "ggml-small.bin")), {"model": "whisper", "header_truncated": True})
    assert pread_log.requested <= 32 << 10


@pytest.mark.parametrize("opening", [b"", b"\x0a\x00\x00\x00silero-16k", b"\x11\x00\x00\x00spkrec-ecapa-tdnn",
                                     struct.pack("<11i", 51865, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1)])
@settings(max_examples=150, deadline=None)
@given(rest=st.binary(max_size=600))
def test_random_bytes_after_an_opening_never_raise(opening: bytes, rest: bytes) -> None:
    data = struct.pack("<I", whisper_files.GGML_MAGIC) + opening + rest
    details = ggml_check.check(-1, len(data), data, b"")
    if details is not None:
        json.dumps(details)
