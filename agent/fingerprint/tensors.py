"""Tensor fingerprints that survive renames, re-sharding, container conversion, float casts and partial copies.

What a fingerprint keeps: the tensor's shape (in row-major order, as numpy writes it) and the sign bits of a
fixed, deterministic sample of its elements (at most SAMPLES, spread evenly over the tensor). Why signs:
every IEEE conversion among float64, float32, float16 and bfloat16 keeps the sign bit exactly, even when the
value underflows to a signed zero, while any rounding of the value itself (say to bfloat16 precision) is
broken by double rounding: float32 -> float16 -> bfloat16 differs from float32 -> bfloat16 in roughly one
element of sixteen, so a digest over quantised values would miss most float16 copies. For trained weights,
thousands of sign bits tell tensors apart as well as the values do. Tensors whose sampled signs are nearly
all equal (zeros, ones, norm scales) carry almost no information and are marked not `informative`.

What it leaves out: the tensor's name and position, so renamed tensors and re-sharded files match, and the
dtype, so casts match.

The sampler rides on the SHA-256 pass (`sha256_fd(on_block=sampler.feed)`): the layout parsers give each
tensor's byte range from the header, and the sampler picks the sign byte of each sampled element out of the
blocks as they pass. One read of the file yields the SHA-256 and every tensor fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from weightwarden.agent.events import TensorPrint
from weightwarden.agent.fingerprint import blocks, encodings
from weightwarden.agent.safe_open import read_at

VERSION = "t1"
SAMPLES = 4096
# A tensor is informative when at least this share of its sampled signs is in the minority.
MIN_MINORITY_SHARE = 1 / 8
MIN_INFORMATIVE_SAMPLES = 64
DENSE_READ_BYTES = 1 << 20  # sample_by_reads reads tensors up to this size whole


@dataclass(frozen=True, slots=True)
class TensorSpan:
    """Where one float tensor lies in a file and how its elements are stored.

    `offset` is the file offset of element 0; elements are `itemsize` bytes each, in row-major order, with
    the sign in the top bit of the byte at `sign_byte` within each element (itemsize - 1 for little-endian
    data, 0 for big-endian). `encoding` says how to read an element's value (encodings.py: "<f4", ">f2",
    "bf16<", "f8e4m3", "|i1", ...); a block-quantised GGUF tensor has "ggml:<type id>", itemsize 0 and
    no sign byte: it has no exact print, only a similarity block (similarity.py).
    """

    name: str
    shape: tuple[int, ...]
    offset: int
    itemsize: int
    sign_byte: int
    encoding: str = ""

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def nbytes(self) -> int:
        if self.itemsize > 0:
            return self.elements * self.itemsize
        view = blocks.matrix_shape(self.shape, self.encoding)
        if view is None:
            return 0
        try:
            return view[0] * encodings.row_stride(self.encoding, view[1], 0)
        except (ValueError, KeyError):
            return 0  # not whole blocks, or an unknown type: nothing to sample


@dataclass(frozen=True)
class TensorPlan:
    """The tensors to sample in one file, from one parse of its header; `skipped` says why there are none
    when the header was over its memory budget (layouts/budget.py), for the file's report."""

    spans: tuple[TensorSpan, ...] = ()
    skipped: str | None = None


def sample_indices(elements: int) -> np.ndarray:
    """The element indices sampled from a tensor of `elements` elements: depends on the count alone."""
    count = min(elements, SAMPLES)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return (np.arange(count, dtype=np.int64) * elements) // count


def fingerprint_signs(shape: tuple[int, ...], signs: np.ndarray) -> TensorPrint:
    """The print of a tensor of `shape` whose sampled elements have the sign bits `signs` (0/1, uint8)."""
    digest = hashlib.blake2b(digest_size=16, person=b"ww-tensor-t1")
    digest.update(len(shape).to_bytes(1, "little"))
    for dim in shape:
        digest.update(int(dim).to_bytes(8, "little"))
    digest.update(np.packbits(signs).tobytes())
    elements = 1
    for dim in shape:
        elements *= dim
    negatives = int(signs.sum())
    minority = min(negatives, len(signs) - negatives)
    informative = len(signs) >= MIN_INFORMATIVE_SAMPLES and minority >= len(signs) * MIN_MINORITY_SHARE
    return TensorPrint(f"{VERSION}:{digest.hexdigest()}", elements, 0, informative)


def fingerprint_array(array: np.ndarray, name: str = "") -> TensorPrint:
    """The print of an in-memory float array (tests and tools); equal to what the sampler finds in a file
    holding the same array as little-endian IEEE floats."""
    flat = np.ascontiguousarray(array).reshape(-1)
    signs = np.signbit(flat[sample_indices(flat.size)]).astype(np.uint8)
    found = fingerprint_signs(tuple(int(d) for d in array.shape), signs)
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).view(np.uint8).reshape(-1)
    encoding = encodings.ieee(array.dtype.itemsize)
    rows, columns, ranges = blocks.row_ranges(tuple(int(d) for d in array.shape), encoding, 0, array.dtype.itemsize)
    block = (blocks.encode_block(encoding, rows, columns, np.concatenate([data[a:a + n] for a, n in ranges]))
             if ranges else b"")
    return TensorPrint(found.fingerprint, found.elements, int(array.nbytes), found.informative, name, block)


class _Active:
    """A tensor whose sampled bytes are (partly) still ahead of the stream: the sign bytes of the exact
    print and the row prefixes of the similarity block, gathered together in file order."""

    __slots__ = ("block_geometry", "filled", "gathered", "order", "positions", "sign_count", "span")

    def __init__(self, span: TensorSpan) -> None:
        self.span = span
        signs = sign_positions(span)
        rows, columns, ranges = blocks.row_ranges(span.shape, span.encoding, span.offset, span.itemsize)
        self.block_geometry = (rows, columns)
        self.sign_count = len(signs)
        # Most tensors of a hostile header are 1-D and tiny: no corner, so no merge and no permutation.
        self.order: np.ndarray | None = None
        if ranges:
            block = np.concatenate([np.arange(start, start + length, dtype=np.int64) for start, length in ranges])
            wanted = np.concatenate([signs, block])
            self.order = np.argsort(wanted, kind="stable")
            self.positions = wanted[self.order]
        else:
            self.positions = signs
        self.gathered = np.zeros(len(self.positions), dtype=np.uint8)
        self.filled = 0

    def result(self) -> TensorPrint:
        found = self.gathered
        if self.order is not None:
            found = np.empty_like(self.gathered)
            found[self.order] = self.gathered
        return _print(self.span, found[:self.sign_count] >> 7, found[self.sign_count:], self.block_geometry)


def sign_positions(span: TensorSpan) -> np.ndarray:
    """File offsets of the sign bytes of the exact print's samples ([] for quantised tensors)."""
    if span.itemsize <= 0:
        return np.zeros(0, dtype=np.int64)
    return span.offset + sample_indices(span.elements) * span.itemsize + span.sign_byte


class TensorSampler:
    """Collect the sampled bytes of `spans` from the blocks of one sequential pass over the file.

    `feed` must see the file's blocks in order from offset 0 (what `sha256_fd(on_block=...)` does).
    Memory is bounded by the tensors overlapping one block, not by the file's tensor count.
    """

    def __init__(self, spans: list[TensorSpan], file_size: int) -> None:
        # Tensors that fit the file and have elements; a lying header cannot send us past the end.
        usable = [s for s in spans if s.elements > 0 and s.offset >= 0 and s.nbytes > 0
                  and s.offset + s.nbytes <= file_size]
        self._pending = sorted(usable, key=lambda s: s.offset)
        self._next = 0
        self._active: list[_Active] = []
        self._done: list[tuple[int, TensorPrint]] = []
        self._position = 0
        self.skipped = len(spans) - len(usable)

    def feed(self, block: memoryview) -> None:
        start, end = self._position, self._position + len(block)
        self._position = end
        while self._next < len(self._pending) and self._pending[self._next].offset < end:
            self._active.append(_Active(self._pending[self._next]))
            self._next += 1
        if not self._active:
            return
        data = np.frombuffer(block, dtype=np.uint8)
        still: list[_Active] = []
        for active in self._active:
            positions = active.positions
            stop = int(np.searchsorted(positions, end, side="left"))
            if stop > active.filled:
                active.gathered[active.filled:stop] = data[positions[active.filled:stop] - start]
                active.filled = stop
            if active.filled == len(positions):
                # Printed now: keeping the gathered bytes of every finished tensor until the end of the
                # pass would cost as much memory as a file of small tensors is large.
                self._done.append((active.span.offset, active.result()))
            else:
                still.append(active)
        self._active = still

    def prints(self) -> tuple[TensorPrint, ...]:
        """The prints of every tensor whose samples were all seen, in file order."""
        return tuple(found for _, found in sorted(self._done, key=lambda item: item[0]))


def _print(span: TensorSpan, signs: np.ndarray, block_bytes: np.ndarray, geometry: tuple[int, int]) -> TensorPrint:
    rows, columns = geometry
    block = blocks.encode_block(span.encoding, rows, columns, block_bytes) if rows else b""
    if span.itemsize > 0:
        exact = fingerprint_signs(span.shape, signs)
        fingerprint, informative = exact.fingerprint, exact.informative
    else:  # quantised: no sign bit per element; its identity is the shape and the decoded corner
        fingerprint, informative = _block_identity(span.shape, block), block_informative(block)
    # The name serves only the alert's list of matched tensors, and only tensors with a corner match: a
    # header of 100,000 one-element tensors must not keep 100,000 names.
    return TensorPrint(fingerprint, span.elements, span.nbytes, informative, span.name if block else "", block)


def _block_identity(shape: tuple[int, ...], block: bytes) -> str:
    digest = hashlib.blake2b(digest_size=16, person=b"ww-tensor-b1")
    digest.update(len(shape).to_bytes(1, "little"))
    for dim in shape:
        digest.update(int(dim).to_bytes(8, "little"))
    digest.update(block)
    return f"b1:{digest.hexdigest()}"


def block_informative(block: bytes) -> bool:
    """Whether a corner's signs tell models apart (the exact print's rule, over its non-zero values)."""
    values = blocks.decode_block(block)
    if values is None:
        return False
    nonzero = values[values != 0]
    negatives = int((nonzero < 0).sum())
    minority = min(negatives, len(nonzero) - negatives)
    return len(nonzero) >= MIN_INFORMATIVE_SAMPLES and minority >= len(nonzero) * MIN_MINORITY_SHARE


def sample_by_reads(fd: int, spans: list[TensorSpan], file_size: int) -> tuple[TensorPrint, ...]:
    """The same prints without a full pass: small reads of the sampled bytes (files whose SHA-256 is
    already known, e.g. from a Hugging Face or Ollama blob name). Costs ~SAMPLES reads per tensor."""
    sampler = TensorSampler(spans, file_size)
    found = []
    for span in sampler._pending:
        active = _Active(span)
        if span.nbytes <= DENSE_READ_BYTES:  # small tensors: one read beats thousands
            data = np.frombuffer(read_at(fd, span.offset, span.nbytes), dtype=np.uint8)
            if len(data) != span.nbytes:
                continue  # the file shrank
            active.gathered[:] = data[active.positions - span.offset]
        elif not _read_scattered(fd, active):
            continue
        found.append(active.result())
    return tuple(found)


def _read_scattered(fd: int, active: _Active) -> bool:
    """Fill `active` by one read per run of adjacent wanted bytes (a block row is one run)."""
    positions = active.positions
    breaks = np.flatnonzero(np.diff(positions) > 1) + 1
    for run in np.split(np.arange(len(positions)), breaks):
        first, last = int(positions[run[0]]), int(positions[run[-1]])
        data = read_at(fd, first, last - first + 1)
        if len(data) != last - first + 1:
            return False
        active.gathered[run] = np.frombuffer(data, dtype=np.uint8)[positions[run] - first]
    return True
