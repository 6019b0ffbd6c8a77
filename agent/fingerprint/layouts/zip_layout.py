"""Zip containers: torch.save checkpoints (data.pkl + one stored member per storage) and NumPy .npz.

torch: the tensors' dtype, shape, stride and storage offset live in `data.pkl`. It is read with a
restricted unpickler that imports nothing: the few torch callables that rebuild tensors are replaced by
functions that only record their arguments, and every other global becomes one inert stub class per file.
So no code from the file ever runs, and the result is a list of (storage key, offset, shape) per tensor.
npz: every stored `<name>.npy` member is an .npy array; compressed members cannot be sampled from the
raw bytes and are left out.

Memory ceiling: data.pkl is read only up to MAX_PICKLE_BYTES (2 MiB), and before it is unpickled its
opcodes are priced by pickle_budget (at most 48 MiB of objects, memo indices in order). Nothing the pickle
names creates a class: every unknown global is the same stub class, and the records the unpickler builds
have no __dict__ a BUILD opcode could fill. The tensor walk visits at most MAX_WALK_NODES containers. So
one torch zip costs at most about 2 MiB + 48 MiB; a pickle over budget raises OverBudget (reported, the
file is still hashed).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any

from weightwarden.agent.fingerprint import encodings
from weightwarden.agent.fingerprint.layouts.budget import OverBudget, mib
from weightwarden.agent.fingerprint.layouts.npy_layout import array_span
from weightwarden.agent.fingerprint.layouts.pickle_budget import check_pickle_budget
from weightwarden.agent.fingerprint.tensors import TensorSpan
from weightwarden.agent.identify.zip_directory import (
    Member,
    ZipError,
    ZipSource,
    find_central_directory,
    iter_members,
    member_data_offset,
)
from weightwarden.agent.safe_open import read_at

TAIL_BYTES = 64 << 10
# data.pkl holds only the object tree (about 120 bytes per tensor: 2 MiB is about 17,000 tensors); what a
# hostile one can make the unpickler build is bounded by pickle_budget.
MAX_PICKLE_BYTES = 2 << 20
MAX_MEMBERS = 1 << 17  # one per storage (and per .npy array); each kept member costs about 200 bytes
MAX_WALK_NODES = 50_000  # containers visited: state dicts have about one per tensor
_STORED = 0
_UNKNOWN_SIZE = 0xFFFFFFFF
# Storage classes pickled by torch.save -> the encoding of the ones we sample (floats, and int8 weights).
SAMPLED_STORAGES = {"FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": encodings.BF16_LE,
                    "DoubleStorage": "<f8", "CharStorage": encodings.INT8}
_ITEMSIZES = {"<f4": 4, "<f2": 2, encodings.BF16_LE: 2, "<f8": 8, encodings.INT8: 1}


# slots: a BUILD opcode aimed at one of these records fails (no __dict__) instead of copying a dict into it.
@dataclass(frozen=True, slots=True)
class _StorageType:
    encoding: str | None


@dataclass(frozen=True, slots=True)
class _StorageRef:
    key: str
    encoding: str | None
    numel: int

    @property
    def itemsize(self) -> int | None:
        return _ITEMSIZES.get(self.encoding) if self.encoding else None


@dataclass(frozen=True, slots=True)
class _TensorRef:
    storage: Any
    offset: Any
    shape: Any
    stride: Any


class _Stub:
    """Stands in for any class or function a pickle names: accepts everything, keeps nothing."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _ScriptObject:
    """A TorchScript module (a `__torch__.*` class in a torch.jit.save archive): its attributes, parameters
    and submodules arrive as one BUILD state dict, which is kept so the tensors in it can be found."""

    __slots__ = ("state",)

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else None


def _rebuild_tensor(storage: Any, offset: Any, shape: Any, stride: Any, *rest: Any) -> _TensorRef:
    return _TensorRef(storage, offset, shape, stride)


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    return data


def _rebuild_from_type(function: Any, new_type: Any, args: Any, state: Any) -> Any:
    return function(*args) if callable(function) and isinstance(args, tuple) else None


def _new_dict(*args: Any) -> dict[Any, Any]:
    # torch pickles an OrderedDict as a call without arguments, then SETITEMS: copying an argument would
    # let a few opcodes duplicate a large memoised dict again and again.
    return {}


class _Call:
    """A known callable as the pickle sees it: no __dict__ for BUILD to fill, so one file cannot leave
    anything on it for the next."""

    __slots__ = ("_function",)

    def __init__(self, function: Any) -> None:
        self._function = function

    def __call__(self, *args: Any) -> Any:
        return self._function(*args)


_KNOWN: dict[tuple[str, str], _Call] = {
    ("torch._utils", "_rebuild_tensor_v2"): _Call(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Call(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Call(_rebuild_parameter),
    ("torch._tensor", "_rebuild_from_type_v2"): _Call(_rebuild_from_type),
    ("collections", "OrderedDict"): _Call(_new_dict),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        # One stub class per file, whatever the number of globals: a class costs about 1 KiB, and a global
        # costs the pickle 5 bytes. Per file rather than per process, so nothing carries over between files.
        self._stub = type("Stub", (_Stub,), {"__slots__": ()})

    def find_class(self, module: str, name: str) -> Any:
        known = _KNOWN.get((module, name))
        if known is not None:
            return known
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(SAMPLED_STORAGES.get(name))
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptObject
        return self._stub

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            storage_type, key, numel = pid[1], pid[2], pid[4]
            encoding = storage_type.encoding if isinstance(storage_type, _StorageType) else None
            if isinstance(key, str) and type(numel) is int:
                return _StorageRef(key, encoding, numel)
        return None


def torch_spans(fd: int, size: int) -> list[TensorSpan]:
    source = _source(fd, size)
    members = _members(source)
    if not members:
        return []
    prefix = members[0].name.split("/", 1)[0] + "/"
    by_name = {m.name: m for m in members}
    pickled = by_name.get(prefix + "data.pkl")
    if pickled is None or pickled.method != _STORED:
        return []
    if pickled.size > MAX_PICKLE_BYTES:
        raise OverBudget(f"data.pkl too large: {mib(pickled.size)} > {mib(MAX_PICKLE_BYTES)}")
    if _byteorder(source, by_name.get(prefix + "byteorder")) != "little":
        return []
    data = source.read(member_data_offset(source, pickled), pickled.size)
    try:
        check_pickle_budget(data)
    except ValueError:
        return []  # opcodes that do not decode: the unpickler would refuse them too
    try:
        root = _RestrictedUnpickler(io.BytesIO(data)).load()
    except Exception:  # a hostile pickle can raise anything the unpickler raises; it is then not sampled
        return []
    found = []
    for name, tensor in _tensors(root):
        span = _storage_span(source, by_name, prefix, name, tensor)
        if span is not None:
            found.append(span)
    return found


def npz_spans(fd: int, size: int) -> list[TensorSpan]:
    source = _source(fd, size)
    found = []
    for member in _members(source):
        if not member.name.endswith(".npy") or member.method != _STORED:
            continue
        start = member_data_offset(source, member)
        length = member.compressed_size if member.compressed_size != _UNKNOWN_SIZE else size - start
        span = array_span(fd, start, min(size, start + length), member.name.removesuffix(".npy"))
        if span is not None:
            found.append(span)
    return found


def _source(fd: int, size: int) -> ZipSource:
    tail_start = max(0, size - TAIL_BYTES)
    return ZipSource(fd, size, b"", read_at(fd, tail_start, size - tail_start))


def _members(source: ZipSource) -> list[Member]:
    try:
        members = []
        for member in iter_members(find_central_directory(source)):
            members.append(member)
            if len(members) > MAX_MEMBERS:
                raise OverBudget(f"zip has more than {MAX_MEMBERS:,} members")
        return members
    except ZipError:
        return []


def _byteorder(source: ZipSource, member: Member | None) -> str:
    if member is None:
        return "little"  # torch wrote no byteorder record before 1.10: those files are little-endian
    try:
        return source.read(member_data_offset(source, member), min(member.size, 16)).decode("ascii", "replace")
    except ZipError:
        return "unknown"


_CONTAINERS = (dict, list, tuple, _TensorRef, _ScriptObject)


def _tensors(root: Any) -> list[tuple[str, _TensorRef]]:
    """Every tensor reachable from the unpickled object, named by its dict key where it has one."""
    found: list[tuple[str, _TensorRef]] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", root)]
    budget = MAX_WALK_NODES
    while stack and budget > 0:
        name, value = stack.pop()
        budget -= 1
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, _TensorRef):
            found.append((name, value))
        elif isinstance(value, dict):
            stack.extend((f"{name}.{key}" if name else str(key), item) for key, item in value.items()
                         if isinstance(item, _CONTAINERS))
        elif isinstance(value, list | tuple):
            stack.extend((name, item) for item in value if isinstance(item, _CONTAINERS))
        elif isinstance(value, _ScriptObject) and getattr(value, "state", None) is not None:
            stack.append((name, value.state))
    return found


def _storage_span(source: ZipSource, by_name: dict[str, Member], prefix: str, name: str,
                  tensor: _TensorRef) -> TensorSpan | None:
    storage, offset, shape, stride = tensor.storage, tensor.offset, tensor.shape, tensor.stride
    if not isinstance(storage, _StorageRef) or storage.itemsize is None or storage.encoding is None \
            or type(offset) is not int:
        return None
    if not _int_tuple(shape) or not _int_tuple(stride) or len(shape) != len(stride) or offset < 0:
        return None
    if not _contiguous(shape, stride):
        return None  # a view with its own element order; torch.save keeps such views rare
    member = by_name.get(f"{prefix}data/{storage.key}")
    if member is None or member.method != _STORED:
        return None
    span = TensorSpan(name, tuple(shape), member_data_offset(source, member) + offset * storage.itemsize,
                      storage.itemsize, storage.itemsize - 1, storage.encoding)
    if offset + span.elements > storage.numel:
        return None
    return span


def _int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(type(v) is int and v >= 0 for v in value)


def _contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    expected = 1
    for dim, step in zip(reversed(shape), reversed(stride), strict=True):
        if dim > 1 and step != expected:
            return False
        expected *= dim
    return True
