"""Hostile model files and a peak-memory probe, for the adversarial tests and bench/parser_memory.py.

Each corpus file is written when asked (never a stored blob), with the real libraries where they can write
it (torch, safetensors, gguf) and by hand where the attack is a header no library would write. `measure`
runs the product's entry point (Scanner.examine: identify, plan, hash and sample) on one file in a fresh
child process and reports how far its peak RSS rose while examining it (VmHWM, reset through
/proc/self/clear_refs once the child is warm), so what one worker costs is measured, not estimated. The
child runs under an address-space limit, so an attack that worked on old code ends in MemoryError there,
not in the OOM killer on the test machine.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
CHILD_ADDRESS_SPACE = 4 << 30

_CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.scanner import Scanner
scanner = Scanner(Identifier(), FingerprintCache(), workers=1)
scanner.examine(sys.argv[3])  # warm: rules compiled, code paths imported, on a tiny benign file

def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) * 1024

# Start the high-water mark from here (imports and rule compiling peak higher than the warm process).
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
start = rss("VmRSS")
began = time.perf_counter()
outcome = scanner.examine(sys.argv[1])
seconds = time.perf_counter() - began
peak = rss("VmHWM")
details = getattr(outcome, "details", None)
print(json.dumps({"growth": peak - start, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "seconds": seconds,
                  "format": getattr(outcome, "format", None), "reason": getattr(outcome, "reason", None),
                  "over_budget": (details or {}).get("over_budget"), "tensors": len(getattr(outcome, "tensors", ()))}))
"""


@dataclass(frozen=True)
class ParseCost:
    """What examining one file cost a fresh worker process."""

    growth: int  # bytes the peak RSS rose while examining the file
    peak: int  # the process's peak RSS, imports included
    seconds: float
    format: str | None
    over_budget: str | None
    tensors: int


@dataclass(frozen=True)
class HostileFile:
    name: str
    attack: str  # what it does to a parser, for the benchmark table
    ceiling: int  # the most examining it may add to a worker's peak RSS
    write: Callable[[Path], None]


def measure(path: Path, warm_up: Path) -> ParseCost:
    """Examine `path` in a child process (after `warm_up`, a small benign model file) and return its cost."""
    result = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(CHILD_ADDRESS_SPACE), str(warm_up)],
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"examining {path.name} failed: {result.stderr[-2000:]}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    return ParseCost(found["growth"], found["peak"], found["seconds"], found["format"], found["over_budget"],
                     found["tensors"])


def write_warm_up(path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.ones((4, 4), dtype=np.float32)}, str(path))


# --- torch zips with a hostile data.pkl --------------------------------------------------------------------

def torch_zip(path: Path, pickled: bytes) -> None:
    """A torch.save-shaped zip (archive/data.pkl, byteorder, version) around `pickled`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")


def globals_pickle(size: int = 2 * MiB) -> bytes:
    """Nothing but GLOBAL opcodes kept on the stack: the old walk made a new class (~2 KiB) for each 5 bytes."""
    return b"\x80\x02(" + b"ca\nb\n" * ((size - 8) // 5) + b"l."


def sets_pickle(size: int = 2 * MiB) -> bytes:
    """EMPTY_SET: one byte, one 216-byte set."""
    return b"\x80\x04(" + b"\x8f" * (size - 8) + b"l."


def memo_jump_pickle(index: int = 1 << 26) -> bytes:
    """One LONG_BINPUT with a far index: the C unpickler grows and zeroes its memo table to 2 x index slots."""
    return b"\x80\x02N" + b"r" + index.to_bytes(4, "little") + b"."


def dict_copies_pickle(items: int = 2000, copies: int = 2000) -> bytes:
    """A memoised dict copied by OrderedDict(d) again and again: a few bytes for each whole copy."""
    body = bytearray(b"\x80\x02ccollections\nOrderedDict\nq\x00}q\x01(")
    for i in range(items):
        body += b"J" + i.to_bytes(4, "little") + b"N"
    body += b"u("
    for _ in range(copies):
        body += b"h\x00h\x01\x85R"  # BINGET OrderedDict, BINGET dict, TUPLE1, REDUCE
    body += b"l."
    return bytes(body)


def real_torch_checkpoint(path: Path, tensors: int = 2000) -> None:
    import torch

    torch.save({f"layers.{i}.weight": torch.randn(8, 8) for i in range(tensors)}, path)


# --- safetensors -------------------------------------------------------------------------------------------

def safetensors_with_header(path: Path, header: dict[str, object], data_len: int) -> None:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)) + encoded)
        out.truncate(8 + len(encoded) + data_len)  # sparse: the data is never read by the header parser


def tiny_tensor_header(count: int, name_width: int = 8) -> tuple[dict[str, object], int]:
    header: dict[str, object] = {
        f"t{i:0{name_width}d}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(count)
    }
    return header, 4 * count


def huge_header_safetensors(path: Path) -> None:
    """A 20 MB header of one-element tensors (the reference parser accepts up to 100 MB)."""
    safetensors_with_header(path, *tiny_tensor_header(300_000, name_width=12))


def capped_header_safetensors(path: Path) -> None:
    """The worst header we still parse: just under both caps (16 MiB, 131,072 tensors)."""
    from weightwarden.agent.identify import safetensors_check

    # getattr: the tests also ran this corpus against the code before the caps existed.
    max_header = getattr(safetensors_check, "MAX_PARSED_HEADER_BYTES", 16 * MiB)
    max_tensors = getattr(safetensors_check, "MAX_TENSORS", 1 << 17)
    header, data_len = tiny_tensor_header(max_tensors, name_width=8)
    pad = max_header - len(json.dumps(header, separators=(",", ":"))) - 64
    header["__metadata__"] = {"pad": "\U0001F600" + "x" * max(0, pad - 4)}  # one astral char: 4 bytes a char
    safetensors_with_header(path, header, data_len)


def many_f8_tensors_safetensors(path: Path, count: int = 20_000) -> None:
    """F8 tensors of 4,096 elements: the old sampler kept 4 KiB of sign bytes per tensor to the end."""
    import torch
    from safetensors.torch import save_file

    save_file({f"t{i}": torch.ones(4096).to(torch.float8_e4m3fn) for i in range(count)}, str(path))


def real_safetensors(path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({f"layers.{i}.weight": np.ones((64, 64), dtype=np.float32) for i in range(500)}, str(path),
              metadata={"format": "pt"})


# --- GGUF --------------------------------------------------------------------------------------------------

def many_tensor_infos_gguf(path: Path, count: int = 1_000_000) -> None:
    """A GGUF header with a million F32 tensor infos of one element each (~33 MB of header)."""
    with open(path, "wb") as out:
        out.write(b"GGUF" + struct.pack("<IQQ", 3, count, 0))
        for i in range(count):
            name = f"{i:x}".encode()
            out.write(struct.pack("<Q", len(name)) + name + struct.pack("<IQIQ", 1, 1, 0, 32 * i))
        out.truncate(out.tell() + 32 * count + 64)


def real_gguf(path: Path) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    for i in range(200):
        writer.add_tensor(f"blk.{i}.weight", np.ones((32, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


CORPUS: tuple[HostileFile, ...] = (
    HostileFile("globals.pt", "2 MiB data.pkl of GLOBAL opcodes (a class per global)", 64 * MiB,
                lambda p: torch_zip(p, globals_pickle())),
    HostileFile("sets.pt", "2 MiB data.pkl of EMPTY_SET opcodes", 64 * MiB, lambda p: torch_zip(p, sets_pickle())),
    HostileFile("sets-in-budget.pt", "180,000 EMPTY_SETs: just inside the pickle budget", 64 * MiB,
                lambda p: torch_zip(p, sets_pickle(180_000))),
    HostileFile("memo-jump.pt", "10-byte data.pkl with memo index 2**26", 64 * MiB,
                lambda p: torch_zip(p, memo_jump_pickle())),
    HostileFile("dict-copies.pt", "OrderedDict(d) of a 2,000-item dict, 2,000 times", 64 * MiB,
                lambda p: torch_zip(p, dict_copies_pickle())),
    HostileFile("huge-header.safetensors", "20 MB header, 300,000 tensors", 32 * MiB, huge_header_safetensors),
    HostileFile("capped-header.safetensors", "16 MiB header (one astral char), 131,072 tensors", 128 * MiB,
                capped_header_safetensors),
    HostileFile("many-f8.safetensors", "20,000 F8 tensors of 4,096 elements (80 MB)", 48 * MiB,
                many_f8_tensors_safetensors),
    HostileFile("many-infos.gguf", "1,000,000 tensor infos", 32 * MiB, many_tensor_infos_gguf),
    HostileFile("real-2000.pt", "benign: torch.save of 2,000 tensors", 48 * MiB, real_torch_checkpoint),
    HostileFile("real-500.safetensors", "benign: safetensors of 500 tensors", 48 * MiB, real_safetensors),
    HostileFile("real-200.gguf", "benign: GGUFWriter, 200 tensors", 48 * MiB, real_gguf),
)
