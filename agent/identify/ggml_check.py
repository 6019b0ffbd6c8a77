"""Structural check for legacy GGML files: magic, version and plausible hyper-parameters.

Layouts (llama.cpp before GGUF): u32 magic; ggmf/ggjt/ggla/ggsn/ggsq then a u32 version (1..3 for
models, small for sessions); the unversioned "ggml" goes straight to the hyper-parameters (n_vocab,
n_embd, n_mult, n_head, n_layer, ... as i32). Session/state files hold cached prompts: flagged.

whisper.cpp still writes the unversioned "ggml" magic for every model it loads (its models/convert-*.py),
each with its own header after the magic (all i32, little-endian):
- whisper (convert-pt-to-ggml.py, convert-h5-to-ggml.py; `quantize` rewrites ftype as type + 1000 x
  quantisation version): 11 hyper-parameters (n_vocab, n_audio_ctx, n_audio_state, n_audio_head,
  n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype), then the mel filters
  (n_mel = n_mels, n_fft, n_mel x n_fft f32), the vocabulary (count, then length + bytes per token), then
  the tensors (n_dims, name length, type, n_dims dims, name, data).
- parakeet (convert-parakeet-to-ggml.py): 14 hyper-parameters (n_vocab, n_audio_ctx, n_audio_state,
  n_audio_head, n_audio_layer, n_mels, ftype, n_fft, subsampling factor and channels, prediction dim and
  layers, TDT durations, max tokens), then mel filters (n_mel = n_mels, n_freqs, floats), ...
- typed models, the voice-activity-detection model (convert-silero-vad-to-ggml.py, "silero-16k") and the
  speaker-embedding model (convert-speaker-to-ggml.py, "spkrec-ecapa-tdnn"): a length-prefixed model type
  name, a major.minor.patch version, their own hyper-parameters, then tensors (n_dims, name length, type,
  dims, name, data; the speaker model leaves the type out, its tensors are all f32).
Only the window is read. Once a file's opening matches one of these headers, it is reported as that model
even when what follows does not add up: "malformed" then says what (a lying count, a file that ends inside
its header), and "header_truncated" says the window ended before the first tensor. Counts are compared with
limits and the window, never allocated.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any

from weightwarden.agent.identify.details import clip

VARIANTS = {0x67676D6C: "ggml", 0x67676D66: "ggmf", 0x67676A74: "ggjt", 0x67676C61: "ggla",
            0x6767736E: "ggsn", 0x67677371: "ggsq"}
MAX_VOCAB = 10_000_000
MAX_DIM = 1 << 20
MAX_MELS = 1024
MAX_FFT = 1 << 16
MAX_LAYERS = 4096
MAX_TOKEN_BYTES = 4096
MAX_TENSOR_NAME = 1024
MAX_TENSOR_DIMS = 4
MAX_GGML_TYPE = 64  # ggml_type ids are small (GGML_TYPE_COUNT is about 40)
MAX_VERSION_PART = 1_000_000
QUANTIZATION_FACTOR = 1000  # GGML_QNT_VERSION_FACTOR: ftype = type + factor x quantisation version
MAX_TOKENS_WALKED = 4096
_MODEL_TYPE = re.compile(rb"[a-z][a-z0-9_.\-]{0,63}")
_I32 = struct.Struct("<i")

_SILERO_TYPE = "silero-16k"
_SPEAKER_TYPE = "spkrec-ecapa-tdnn"


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if len(head) < 16:
        return None
    magic, second, third = struct.unpack_from("<III", head)
    variant = VARIANTS.get(magic)
    if variant is None:
        return None
    if variant in ("ggsn", "ggsq"):
        return {"variant": variant, "version": second, "session_state": True} if 1 <= second <= 16 else None
    if variant == "ggml":
        whisper_family = _whisper_family(head, size)
        if whisper_family is not None:
            return {"variant": variant, "version": None, "session_state": False, "adapter": False,
                    **whisper_family}
        version, n_vocab, n_embd = None, second, third
    else:
        if not 1 <= second <= 3:
            return None
        version = second
        if variant == "ggla":
            return {"variant": variant, "version": version, "session_state": False, "adapter": True}
        n_vocab, n_embd = struct.unpack_from("<II", head, 8)
    if not (1 <= n_vocab <= MAX_VOCAB and 1 <= n_embd <= MAX_DIM):
        return None
    return {"variant": variant, "version": version, "session_state": False, "adapter": False,
            "n_vocab": n_vocab, "n_embd": n_embd}


def _whisper_family(head: bytes, size: int) -> dict[str, Any] | None:
    for opening in (_typed_model, _whisper, _parakeet):
        found = opening(_Reader(head, 4))
        if found is not None:
            details, reader, rest = found
            try:
                rest(reader, details)
            except _WindowEnded:
                if len(head) >= size:
                    details["malformed"] = "the file ends inside its header"
                else:
                    details["header_truncated"] = True
            except _Malformed as error:
                details["malformed"] = str(error)
            return details
    return None


class _WindowEnded(Exception):
    """The window ends here: the rest of the header lies beyond it (or beyond the end of the file)."""


class _Malformed(Exception):
    """A value no writer produces: a lying count or length."""


class _Reader:
    """i32 reads from the window."""

    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.offset = offset

    def i32(self) -> int:
        if self.offset + 4 > len(self.data):
            raise _WindowEnded
        value: int = _I32.unpack_from(self.data, self.offset)[0]
        self.offset += 4
        return value

    def ints(self, count: int) -> list[int]:
        return [self.i32() for _ in range(count)]

    def skip(self, length: int) -> None:
        self.offset += length
        if self.offset > len(self.data):
            raise _WindowEnded

    def take(self, length: int) -> bytes:
        self.skip(length)
        return self.data[self.offset - length:self.offset]

    def left(self) -> int:
        return len(self.data) - self.offset


# An opening: its details, the reader past it, and the walk over the rest of the header (which adds to the
# details and raises _WindowEnded or _Malformed); or None when the file does not open that way.
Rest = Callable[[_Reader, dict[str, Any]], None]
Opening = tuple[dict[str, Any], _Reader, Rest] | None


def _ftype(value: int) -> tuple[int, int] | None:
    """(ggml type, quantisation version) of a whisper ftype, or None when it cannot be one."""
    if value < 0:
        return None
    quantization, kind = divmod(value, QUANTIZATION_FACTOR)
    return (kind, quantization) if kind <= MAX_GGML_TYPE and quantization <= 16 else None


def _positive(values: list[int], limit: int) -> bool:
    return all(0 < value <= limit for value in values)


def _whisper(reader: _Reader) -> Opening:
    try:
        hparams, mel = reader.ints(11), reader.ints(2)
    except _WindowEnded:
        return None
    (n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
     n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype) = hparams
    if not (0 < n_vocab <= MAX_VOCAB and _positive([n_audio_ctx, n_audio_state, n_text_ctx, n_text_state], MAX_DIM)
            and _positive([n_audio_head, n_audio_layer, n_text_head, n_text_layer], MAX_LAYERS)
            and 0 < n_mels <= MAX_MELS):
        return None
    types = _ftype(ftype)
    if types is None or mel[0] != n_mels or not 0 < mel[1] <= MAX_FFT:
        return None
    details: dict[str, Any] = {
        "model": "whisper", "n_vocab": n_vocab, "n_audio_state": n_audio_state, "n_audio_layer": n_audio_layer,
        "n_text_state": n_text_state, "n_text_layer": n_text_layer, "n_mels": n_mels, "ftype": types[0],
        "quantization_version": types[1]}

    def rest(reader: _Reader, details: dict[str, Any]) -> None:
        reader.skip(4 * mel[0] * mel[1])
        if _vocabulary(reader, details):
            _first_tensor(reader, details, typed=True)

    return details, reader, rest


def _parakeet(reader: _Reader) -> Opening:
    try:
        hparams, mel = reader.ints(14), reader.ints(2)
    except _WindowEnded:
        return None
    n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_mels, ftype, n_fft = hparams[:8]
    n_durations = hparams[12]
    if not (0 < n_vocab <= MAX_VOCAB and _positive([n_audio_ctx, n_audio_state, n_fft], MAX_DIM)
            and _positive([n_audio_head, n_audio_layer], MAX_LAYERS) and 0 < n_mels <= MAX_MELS
            and 0 <= n_durations <= MAX_LAYERS and ftype in (0, 1)):
        return None
    if mel[0] != n_mels or not 0 < mel[1] <= MAX_FFT:
        return None
    details: dict[str, Any] = {
        "model": "parakeet", "n_vocab": n_vocab, "n_audio_state": n_audio_state, "n_audio_layer": n_audio_layer,
        "n_mels": n_mels, "ftype": ftype}

    def rest(reader: _Reader, details: dict[str, Any]) -> None:
        reader.skip(4 * mel[0] * mel[1])
        window = reader.i32()  # the window function: length, then floats
        if not 0 < window <= MAX_FFT:
            raise _Malformed(f"window function length {window}")
        reader.skip(4 * window + 4 * n_durations)
        if _vocabulary(reader, details):
            _first_tensor(reader, details, typed=True)

    return details, reader, rest


def _vocabulary(reader: _Reader, details: dict[str, Any]) -> bool:
    """Walk the token list (count, then length + bytes each), MAX_TOKENS_WALKED tokens at most: a whisper
    vocabulary has 51,865 and walking it all costs milliseconds on every file event. True when walked to its
    end, so the first tensor comes next."""
    count = reader.i32()
    if not 0 <= count <= MAX_VOCAB:
        raise _Malformed(f"vocabulary count {count}")
    data, offset, unpack = reader.data, reader.offset, _I32.unpack_from
    end = len(data)
    for _ in range(min(count, MAX_TOKENS_WALKED)):
        if offset + 4 > end:
            raise _WindowEnded
        length = unpack(data, offset)[0]
        if not 0 <= length <= MAX_TOKEN_BYTES:
            raise _Malformed(f"token length {length}")
        offset += 4 + length
    if offset > end:
        raise _WindowEnded
    reader.offset = offset
    if count > MAX_TOKENS_WALKED:
        details["tokens_walked"] = MAX_TOKENS_WALKED
        return False
    return True


def _first_tensor(reader: _Reader, details: dict[str, Any], *, typed: bool) -> None:
    """The first tensor's header (n_dims, name length, [type,] dims, name): details["first_tensor"].

    A file that ends right here holds no tensors: it still carries the model's header (first_tensor None).
    """
    if reader.left() == 0:
        details["first_tensor"] = None
        return
    header = reader.ints(3 if typed else 2)
    n_dims, name_length = header[0], header[1]
    if not 1 <= n_dims <= MAX_TENSOR_DIMS:
        raise _Malformed(f"tensor with {n_dims} dimensions")
    if not 1 <= name_length <= MAX_TENSOR_NAME:
        raise _Malformed(f"tensor name length {name_length}")
    if typed and not 0 <= header[2] <= MAX_GGML_TYPE:
        raise _Malformed(f"tensor type {header[2]}")
    dims = reader.ints(n_dims)
    if not all(dim > 0 for dim in dims):
        raise _Malformed(f"tensor dimensions {dims}")
    try:
        name = reader.take(name_length).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("tensor name is not UTF-8") from None
    if not name.isprintable():
        raise _Malformed("tensor name is not printable")
    details["first_tensor"] = clip(name, 128)


def _typed_model(reader: _Reader) -> Opening:
    try:
        length = reader.i32()
        if not 1 <= length <= 64:
            return None
        model_type = reader.take(length)
        if _MODEL_TYPE.fullmatch(model_type) is None:
            return None
        version = reader.ints(3)
    except _WindowEnded:
        return None
    if not all(0 <= part <= MAX_VERSION_PART for part in version):
        return None
    name = model_type.decode("ascii")
    details: dict[str, Any] = {"model": name, "model_version": ".".join(map(str, version))}
    rest = {_SILERO_TYPE: _silero, _SPEAKER_TYPE: _speaker}.get(name, _unknown_typed_model)
    return details, reader, rest


def _unknown_typed_model(reader: _Reader, details: dict[str, Any]) -> None:
    """A typed model whisper.cpp may add later: the type name and version are all we know of its header."""


def _silero(reader: _Reader, details: dict[str, Any]) -> None:
    """window size, context size, encoder layer count, (in, out, kernel) per layer, LSTM input and hidden
    size, final conv in and out."""
    window_size, context_size, n_layers = reader.ints(3)
    if not _positive([window_size, context_size], MAX_FFT):
        raise _Malformed(f"window size {window_size}, context size {context_size}")
    if not 0 < n_layers <= 64:
        raise _Malformed(f"encoder layer count {n_layers}")
    details |= {"window_size": window_size, "context_size": context_size, "encoder_layers": n_layers}
    sizes = reader.ints(3 * n_layers + 4)
    if not _positive(sizes, MAX_DIM):
        raise _Malformed(f"layer sizes {sizes[:16]}")
    details["lstm_hidden_size"] = sizes[-3]
    _first_tensor(reader, details, typed=True)


def _speaker(reader: _Reader, details: dict[str, Any]) -> None:
    """embedding dim, channels, tensor count; tensors carry no type (all f32)."""
    embedding_dim, channels, tensor_count = reader.ints(3)
    if not _positive([embedding_dim, channels], MAX_DIM):
        raise _Malformed(f"embedding dim {embedding_dim}, channels {channels}")
    if not 0 <= tensor_count <= MAX_VOCAB:
        raise _Malformed(f"tensor count {tensor_count}")
    details |= {"embedding_dim": embedding_dim, "tensor_count": tensor_count}
    _first_tensor(reader, details, typed=False)
