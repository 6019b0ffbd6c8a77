"""Structural check for safetensors: the JSON header must describe a tensor buffer that fills the file.

Layout: u64 LE header length N, N bytes of JSON ({name: {dtype, shape, data_offsets}, "__metadata__": {}}),
then the data buffer. Mirrors the validation of the reference parser (safetensors/src/tensor.rs).

The header is parsed once per file, here: the same parse gives the check's details and the float tensors
the fingerprint samples (details[PLAN_KEY], taken out by the Identifier), so the layout does not parse it
again.

Memory ceiling. The reference parser accepts headers up to 100,000,000 bytes; we parse at most
MAX_PARSED_HEADER_BYTES (16 MiB) and MAX_TENSORS (131,072) entries. Real headers take about 100 bytes per
tensor: a 5 GB Hugging Face shard has hundreds of tensors (tens of KB), a whole Stable Diffusion checkpoint
about 2,500 (~300 KB), and DeepSeek-V3's 91,000 tensors merged into one file would make ~11 MB; the
Hugging Face Hub's own header reader stops at 25 MB. Each entry is turned into a compact tuple as soon as
the JSON decoder closes it (object_pairs_hook), so a header costs its bytes, its decoded text (up to 4x
its length when one character is outside the BMP) and about 400 bytes per tensor: at most about 130 MiB
at both caps together, 15 MiB for a 1 MB header. A larger header raises OverBudget ("safetensors header too
large"): the file is reported as a safetensors candidate that was not parsed, and is still hashed.
"""

from __future__ import annotations

import json
import struct
from typing import Any, NamedTuple

from weightwarden.agent.fingerprint import encodings
from weightwarden.agent.fingerprint.layouts.budget import OverBudget, mib
from weightwarden.agent.fingerprint.tensors import TensorPlan, TensorSpan
from weightwarden.agent.identify.details import truncate_string_map
from weightwarden.agent.safe_open import read_at

# The reference parser's limit: a length above it is not a safetensors file at all.
MAX_HEADER_BYTES = 100_000_000
# The most we parse (see the module docstring for why this is enough for real models).
MAX_PARSED_HEADER_BYTES = 16 << 20
MAX_TENSORS = 1 << 17
METADATA_KEY = "__metadata__"
PLAN_KEY = "tensor_plan"
# Element width in bits; sub-byte float formats (F4, F6) pack several elements per byte.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8,
    "U16": 16, "I16": 16, "F16": 16, "BF16": 16,
    "U32": 32, "I32": 32, "F32": 32,
    "U64": 64, "I64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
# The float dtypes whose sign bit the tensor fingerprints sample, and their item size.
# Sampled dtypes: item size, and the encoding their values are read with (I8: the weights that int8
# quantisation tools write, whose sign is the weight's).
SAMPLED_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1}
ENCODINGS = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": encodings.BF16_LE, "F8_E4M3": encodings.F8_E4M3,
             "F8_E5M2": encodings.F8_E5M2, "I8": encodings.INT8}
_DTYPE_NAMES = {name: name for name in DTYPE_BITS}  # one string object per dtype, however many tensors


class _Invalid(Exception):
    pass


class _Entry(NamedTuple):
    """One tensor entry as the decoder closes it; fields are checked later (None when of the wrong type)."""

    begin: Any
    end: Any
    dtype: Any
    shape: Any


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    if len(head) < 8:
        return None
    (header_len,) = struct.unpack_from("<Q", head)
    if not 2 <= header_len <= MAX_HEADER_BYTES or 8 + header_len > size:
        return None
    if header_len > MAX_PARSED_HEADER_BYTES:
        if not head[8:].lstrip(b" ").startswith(b"{"):
            return None
        raise OverBudget(f"safetensors header too large: {mib(header_len)} > {mib(MAX_PARSED_HEADER_BYTES)}")
    # Bounded by the cap and by the real file size checked above: a hostile length never allocates.
    header = head[8:8 + header_len] if 8 + header_len <= len(head) else read_at(fd, 8, header_len)
    if len(header) != header_len:
        return None  # the file shrank while we read it
    try:
        parsed = _parse(header)
        del header  # the text and the entries are enough from here
        return _validate(parsed, data_len=size - 8 - header_len, header_len=header_len)
    except _Invalid:
        return None


def plan(fd: int, size: int) -> TensorPlan:
    """The float tensors of a safetensors file, for callers without its identification (the layouts)."""
    head = read_at(fd, 0, min(size, 64 << 10))
    try:
        details = check(fd, size, head, b"")
    except OverBudget as error:
        return TensorPlan(skipped=str(error))
    found = details.get(PLAN_KEY) if details is not None else None
    return found if isinstance(found, TensorPlan) else TensorPlan()


def _parse(header: bytes) -> dict[str, Any]:
    if not header.lstrip(b" ").startswith(b"{"):
        raise _Invalid
    counter = _EntryCounter()
    try:
        # Decode first: json.loads on bytes guesses UTF-16/32 from zero bytes; the format says UTF-8.
        parsed = json.loads(header.decode("utf-8"), object_pairs_hook=counter.close)
    # ValueError: bad JSON or UTF-8, or an integer too long to convert; RecursionError: deep nesting.
    except (ValueError, RecursionError):
        raise _Invalid from None
    if not isinstance(parsed, dict):
        raise _Invalid
    return parsed


class _EntryCounter:
    """object_pairs_hook: each tensor entry becomes an _Entry the moment it is closed (a dict per entry
    would cost three times as much), and the count stops at MAX_TENSORS."""

    def __init__(self) -> None:
        self.entries = 0

    def close(self, pairs: list[tuple[str, Any]]) -> Any:
        fields = dict(pairs)
        offsets = fields.get("data_offsets")
        if not isinstance(offsets, list):
            return fields  # the metadata map, or something the validation rejects
        self.entries += 1
        if self.entries > MAX_TENSORS:
            raise OverBudget(f"safetensors header too large: more than {MAX_TENSORS:,} tensors")
        shape, dtype = fields.get("shape"), fields.get("dtype")
        if len(offsets) != 2 or not isinstance(shape, list):
            raise _Invalid
        return _Entry(offsets[0], offsets[1], _DTYPE_NAMES.get(dtype, dtype) if isinstance(dtype, str) else None,
                      tuple(shape))


def _validate(parsed: dict[str, Any], data_len: int, header_len: int) -> dict[str, Any]:
    metadata = parsed.pop(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _Invalid
    parameters = 0
    dtypes: set[str] = set()
    entries: list[_Entry] = []
    for entry in parsed.values():
        parameters += _tensor(entry, data_len)
        dtypes.add(entry.dtype)
        entries.append(entry)
    # Sorted by offsets the tensors must tile the buffer from 0: no hole, no overlap.
    entries.sort(key=_span_key)
    position = 0
    for entry in entries:
        if entry.begin != position:
            raise _Invalid
        position = entry.end
    if position > data_len:
        raise _Invalid  # truncated: the header describes more data than the file holds
    base = 8 + header_len
    spans = tuple(TensorSpan(name, entry.shape, base + entry.begin, SAMPLED_SIZES[entry.dtype],
                             SAMPLED_SIZES[entry.dtype] - 1, ENCODINGS[entry.dtype])
                  for name, entry in parsed.items() if entry.dtype in SAMPLED_SIZES and entry.end > entry.begin)
    metadata_map, metadata_truncated = truncate_string_map(metadata)
    return {
        "tensor_count": len(entries),
        "parameter_count": parameters,
        "dtypes": sorted(dtypes),
        "metadata": metadata_map,
        "metadata_truncated": metadata_truncated,
        "header_length": header_len,
        # Bytes after the described data: the reference loader rejects these, so they hint at a polyglot.
        "appended_bytes": data_len - position,
        PLAN_KEY: TensorPlan(spans),
    }


def _span_key(entry: _Entry) -> tuple[int, int]:
    return entry.begin, entry.end


def _tensor(entry: Any, data_len: int) -> int:
    """The element count of one header entry; raises _Invalid when malformed."""
    if not isinstance(entry, _Entry) or not isinstance(entry.dtype, str):
        raise _Invalid
    begin, end, shape = entry.begin, entry.end, entry.shape
    if not _is_count(begin) or not _is_count(end) or not all(_is_count(value) for value in shape):
        raise _Invalid
    if begin > end or end > data_len:
        raise _Invalid
    # Stop multiplying once past the buffer size: a hostile shape must not build a huge integer.
    elements = 0 if 0 in shape else 1
    for dim in shape:
        elements *= dim
        if elements > data_len * 8:
            raise _Invalid
    bits = DTYPE_BITS.get(entry.dtype)
    # Unknown (newer) dtypes still count as tensors; only their byte size cannot be checked.
    if bits is not None and (elements * bits + 7) // 8 != end - begin:
        raise _Invalid
    return elements


def _is_count(value: Any) -> bool:
    # bool is an int subclass; JSON true/false is not a count.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
