"""whisper.cpp's ggml files, written here byte for byte as its converters write them.

There is no writer on PyPI (the converters are scripts in the whisper.cpp repository that need the original
checkpoints: openai-whisper's .pt, the silero-vad package, a NeMo archive, SpeechBrain), so each function
packs the layout its converter writes, in the converter's field order:
- whisper: models/convert-pt-to-ggml.py (and convert-h5-to-ggml.py); quantised files keep the layout with
  ftype = type + 1000 x quantisation version (examples/common-ggml.cpp, GGML_QNT_VERSION_FACTOR).
- parakeet: models/convert-parakeet-to-ggml.py.
- silero VAD: models/convert-silero-vad-to-ggml.py ("silero-16k", version of the silero-vad package).
- speaker embedding: models/convert-speaker-to-ggml.py ("spkrec-ecapa-tdnn", tensors without a type).
All integers are little-endian i32 (struct "i" on the x86/ARM machines the scripts run on).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

GGML_MAGIC = 0x67676D6C
TINY = {"n_vocab": 51865, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
        "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4, "n_mels": 80}
N_FFT_BINS = 201  # whisper's mel filters: n_mels x (400 / 2 + 1)


def _i32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}i", *values)


def _tokens(count: int) -> bytes:
    """`count` byte-level BPE-like tokens, each as length + bytes."""
    return _i32(count) + b"".join(_i32(len(token)) + token
                                   for token in (f"tok{index}".encode() for index in range(count)))


def _tensor(name: str, data: np.ndarray, *, typed: bool = True) -> bytes:
    ggml_type = 1 if data.dtype == np.float16 else 0
    dims = list(reversed(data.shape))  # ggml lists the fastest-varying dimension first
    header = _i32(data.ndim, len(name.encode())) + (_i32(ggml_type) if typed else b"")
    return header + _i32(*dims) + name.encode() + data.tobytes()


def whisper_model(path: Path, *, n_vocab: int | None = None, ftype: int = 1,
                  tensors: Iterable[tuple[str, np.ndarray]] | None = None) -> None:
    hparams = dict(TINY)
    vocabulary = n_vocab if n_vocab is not None else 64  # the real count is in hparams; tokens kept few
    n_mels = hparams["n_mels"]
    filters = np.linspace(0, 0.02, n_mels * N_FFT_BINS, dtype=np.float32)
    if tensors is None:
        tensors = [("encoder.positional_embedding", np.zeros((4, 8), np.float32)),
                   ("encoder.conv1.weight", np.ones((8, n_mels, 3), np.float16))]
    with path.open("wb") as handle:
        handle.write(_i32(GGML_MAGIC, *hparams.values(), ftype))
        handle.write(_i32(n_mels, N_FFT_BINS) + filters.tobytes())
        handle.write(_tokens(vocabulary))
        for name, data in tensors:
            handle.write(_tensor(name, data))


def whisper_quantized(path: Path) -> None:
    """`quantize models/ggml-tiny.bin out.bin q5_0`: ftype q5_0 (8) + 1000 x quantisation version 2."""
    whisper_model(path, ftype=8 + 2 * 1000)


def whisper_large_vocabulary(path: Path) -> None:
    """The whole multilingual vocabulary: the tokens run past a small window."""
    whisper_model(path, n_vocab=51865)


def parakeet_model(path: Path) -> None:
    n_mels, n_freqs, window, durations = 128, 257, 400, [0, 1, 2, 3, 4]
    hparams = [1024, 5000, 1024, 8, 24, n_mels, 1, 512, 8, 256, 640, 2, len(durations), 10]
    with path.open("wb") as handle:
        handle.write(_i32(GGML_MAGIC, *hparams))
        handle.write(_i32(n_mels, n_freqs) + np.zeros(n_mels * n_freqs, np.float32).tobytes())
        handle.write(_i32(window) + np.hanning(window).astype(np.float32).tobytes())
        handle.write(struct.pack(f"<{len(durations)}I", *durations))
        handle.write(_tokens(1024))
        handle.write(_tensor("encoder.pre_encode.conv.0.weight", np.ones((256, 1, 3, 3), np.float16)))


def silero_vad(path: Path, version: tuple[int, int, int] = (5, 1, 2)) -> None:
    model_type = b"silero-16k"
    in_channels, out_channels = [129, 128, 64, 64], [128, 64, 64, 128]
    with path.open("wb") as handle:
        handle.write(_i32(GGML_MAGIC, len(model_type)) + model_type + _i32(*version))
        handle.write(_i32(512, 64, 4))  # window size, context size, encoder layers
        for layer in range(4):
            handle.write(_i32(in_channels[layer], out_channels[layer], 3))
        handle.write(_i32(128, 128, 128, 1))  # LSTM input and hidden size, final conv in and out
        for layer in range(4):
            weight = np.ones((out_channels[layer], in_channels[layer], 3), np.float16)
            handle.write(_tensor(f"_model.encoder.{layer}.reparam_conv.weight", weight))
            handle.write(_tensor(f"_model.encoder.{layer}.reparam_conv.bias",
                                 np.zeros(out_channels[layer], np.float32)))


def speaker_model(path: Path) -> None:
    model_type = b"spkrec-ecapa-tdnn"
    with path.open("wb") as handle:
        handle.write(_i32(GGML_MAGIC, len(model_type)) + model_type + _i32(1, 0, 0))
        handle.write(_i32(192, 512, 1))  # embedding dim, channels, tensor count
        handle.write(_tensor("mods.embedding_model.blocks.0.conv.conv.weight",
                             np.zeros((512, 80, 5), np.float32), typed=False))
