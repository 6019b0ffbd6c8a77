"""Structural checks for pickle streams (protocol 2..5) and legacy PyTorch checkpoints. Never unpickles.

A 2-byte PROTO header is a weak signature, so the opcodes are walked with pickletools.genops, which only
decodes them. The stream is confirmed when the walk reaches STOP inside the window, or when it runs out
of window (or of its opcode budget) without an error before that: large pickles with inline binary data
run past any window.
"""

from __future__ import annotations

import io
import pickletools
from typing import Any

from weightwarden.agent.identify.details import clip

PROTOCOLS = range(2, 6)
MAX_GLOBALS = 50
# Python walks about a million opcodes a second; this many decoded without an error is confirmation
# enough, and keeps a window full of one-byte opcodes from costing a second.
MAX_OPCODES = 100_000
# torch.save(_use_new_zipfile_serialization=False) starts with the pickled magic number
# 0x1950a86a20f9469cfc6c: PROTO 2, LONG1 of 10 bytes, STOP.
LEGACY_TORCH_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa850192e")

# Top-level modules whose globals in a pickle mean arrays or ML objects (FORMATS.md: pickle, joblib).
ML_MODULES = {
    "numpy", "torch", "sklearn", "xgboost", "lightgbm", "catboost", "scipy", "joblib", "pandas", "tensorflow",
    "keras", "tf_keras", "jax", "jaxlib", "flax", "optax", "transformers", "peft", "diffusers", "timm",
    "sentence_transformers", "lightning", "pytorch_lightning", "statsmodels", "onnx", "cupy", "mlflow",
    "gensim", "spacy", "fastai",
}

JOBLIB_WRAPPERS = ("joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle.NDArrayWrapper")

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
               "SHORT_BINSTRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_NO_PUSH_OPS = {"PROTO", "FRAME", "STOP"}


def check_pytorch_legacy(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if not head.startswith(LEGACY_TORCH_MAGIC):
        return None
    return {"magic_number": "0x1950a86a20f9469cfc6c", "pickle_protocol": 2}


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    """A pickle that holds arrays or objects of ML libraries: a model artifact. Plain Python data is not.
    joblib.dump output (NumpyArrayWrapper) is named `joblib`."""
    details = walk_pickle(head, size)
    if details is None:
        return None
    modules = {name.split(".", 1)[0] for name in details["uses_globals"]}
    if not modules & ML_MODULES:
        return None  # dicts, lists, strings, dates: data, not a model
    if "joblib" in modules:
        details["format"] = "joblib"
    return details


def walk_pickle(head: bytes, size: int) -> dict[str, Any] | None:
    """Walk the opcodes of the pickle at the start of `head` (a file of `size` bytes) without unpickling."""
    if len(head) < 2 or head[0] != 0x80 or head[1] not in PROTOCOLS:
        return None
    walk = _GlobalTracker()
    stream = _WindowStream(head, size)
    stop_offset: int | None = None
    try:
        for count, (opcode, arg, position) in enumerate(pickletools.genops(stream)):
            walk.see(opcode.name, arg)
            if opcode.name == "STOP":
                stop_offset = position
            elif count >= MAX_OPCODES:
                break
    # genops raises ValueError (UnicodeDecodeError included) for unknown opcodes and short arguments.
    except (ValueError, OverflowError):
        # Running out of window is fine only when the window is not the whole file, the failing read
        # consumed it to the end (an argument or opcode cut by the window edge), and that read did not
        # ask for more bytes than the file holds (a lying length). joblib writes each array's raw bytes
        # right after its NumpyArrayWrapper is built, so its walk stops there: that is its layout.
        inline_arrays = any(name.startswith(JOBLIB_WRAPPERS) for name in walk.globals)
        if not inline_arrays and (len(head) >= size or stream.tell() < len(head) or stream.past_file_end):
            return None
    return {
        "protocol": head[1],
        "reached_stop": stop_offset is not None,
        # Data after STOP: concatenated pickles or raw arrays (legacy torch, joblib) or something hidden.
        "trailing_bytes": None if stop_offset is None else size - stop_offset - 1,
        "uses_globals": walk.globals,
    }


class _WindowStream(io.BytesIO):
    """The window as a stream that remembers whether a read asked for bytes past the end of the file."""

    def __init__(self, window: bytes, file_size: int) -> None:
        super().__init__(window)
        self.file_size = file_size
        self.past_file_end = False

    def read(self, size: int | None = -1, /) -> bytes:
        if size is not None and size > 0 and self.tell() + size > self.file_size:
            self.past_file_end = True
        return super().read(size)


class _GlobalTracker:
    """Collect the globals a pickle would import. STACK_GLOBAL takes module and name from the stack, so
    the last two pushed strings (including ones fetched back from the memo) are tracked."""

    def __init__(self) -> None:
        self.globals: list[str] = []
        self._recent: list[str | None] = [None, None]
        self._memo: dict[int, str] = {}
        self._memo_count = 0

    def see(self, name: str, arg: Any) -> None:
        if name in ("GLOBAL", "INST"):
            self._add(str(arg).replace(" ", ".", 1))
            self._push(None)
        elif name == "STACK_GLOBAL":
            module, attribute = self._recent
            self._add(f"{module or '?'}.{attribute or '?'}")
            self._push(None)
        elif name in _STRING_OPS:
            self._push(arg if isinstance(arg, str) else None)
        elif name in _GET_OPS:
            self._push(self._memo.get(arg))
        elif name == "MEMOIZE":
            self._remember(self._memo_count)
            self._memo_count += 1
        elif name in _PUT_OPS:
            self._remember(arg)
        elif name not in _NO_PUSH_OPS:
            self._push(None)

    def _push(self, value: str | None) -> None:
        self._recent = [self._recent[1], value]

    def _remember(self, index: int) -> None:
        top = self._recent[1]
        if top is not None:
            self._memo[index] = top

    def _add(self, qualified: str) -> None:
        qualified = clip(qualified, 256)
        if len(self.globals) < MAX_GLOBALS and qualified not in self.globals:
            self.globals.append(qualified)
