"""Golden data for the K-quant quantisers: a small llama GGUF, llama-quantize's output for it, stored.

The input is rebuilt from a recipe (`golden_inputs`), never stored: bell-shaped values from the raw
64-bit stream of the PCG64 bit generator itself (numpy may change a `Generator` method's algorithm, not
the bit generator's output), plus rows made to hit the quantisers' edge cases. The manifest keeps a sha256
of every input tensor, so a recipe that drifts fails as such instead of as a byte mismatch.

What is stored (tests/data/kquants/, described in its README.md):
- Q4_K.gguf, Q5_K.gguf, Q6_K.gguf: every tensor llama-quantize wrote in that type, its bytes as written
  (re-wrapped in a GGUF without the F32 norms); a tensor written in the same type by several runs is
  stored once (the runs agree, checked on writing);
- manifest.json: the llama.cpp commit, the input hashes, and per run (e.g. "Q4_K_M --pure") the type
  llama-quantize chose for every tensor.

Regenerate (needs a llama-quantize built from the commit in the README):
    python -m tests.similarity.kquants_golden /path/to/llama-quantize
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "kquants"
LLAMA_CPP_COMMIT = "82bb48500a9a6b3374da2cf5811695369278e4d3"

# 12 blocks: use_more_bits picks 0, 3, 6, 9, 10 and 11, and a loader that sorted names as text
# (blk.10 before blk.2) would pick others, so the layer order llama-quantize uses is pinned too.
N_LAYERS = 12
N_EMBD = 256
N_FF = 512
N_VOCAB = 32
N_OUTPUT_ROWS = 4
MATRIX_ROWS = 2  # llama-quantize leaves 1-row matrices alone: ggml counts them as 1-D
LAYER_MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up")  # rows of N_EMBD
STORED_TYPES = ("Q4_K", "Q5_K", "Q6_K")


@dataclass(frozen=True)
class Run:
    """One llama-quantize invocation on the golden model."""

    name: str
    ftype: str
    pure: bool = False
    tied: bool = False  # the input has no output.weight (tied embeddings)
    n_layers: int = N_LAYERS
    kv_heads: int = 4  # of 4 heads; fewer makes an 80-layer llama LLM_TYPE_70B
    only: tuple[str, ...] = ()  # if set, the input holds just these blk.N tensors (e.g. "attn_v")
    keep_bytes: bool = True  # False: only the types are stored

    @property
    def llama_70b(self) -> bool:
        return self.n_layers == 80 and self.kv_heads < 4

    def holds(self, name: str) -> bool:
        """Whether this run's input file has the tensor `name`."""
        if self.tied and name == "output.weight":
            return False
        return not self.only or (name.startswith("blk.") and name.split(".")[2] in self.only)

    def arguments(self, binary: str, source: Path, target: Path) -> list[str]:
        return [binary, *(["--pure"] if self.pure else []), str(source), str(target), self.ftype, "2"]


RUNS = (
    Run("Q4_K_M --pure", "Q4_K_M", pure=True),
    Run("Q5_K_M --pure", "Q5_K_M", pure=True),
    Run("Q6_K --pure", "Q6_K", pure=True),
    Run("Q4_K_M", "Q4_K_M"),
    Run("Q5_K_M", "Q5_K_M"),
    Run("Q6_K", "Q6_K"),
    Run("Q4_K_M tied", "Q4_K_M", tied=True),
    Run("Q5_K_M tied", "Q5_K_M", tied=True),
    # an 80-block llama with fewer KV heads than heads is typed 70B: its attn_v rule differs
    Run("Q4_K_M 70B", "Q4_K_M", n_layers=80, kv_heads=1, only=("attn_v", "ffn_down"), keep_bytes=False),
    Run("Q5_K_M 70B", "Q5_K_M", n_layers=80, kv_heads=1, only=("attn_v", "ffn_down"), keep_bytes=False),
)


def tensor_shapes(n_layers: int = N_LAYERS) -> dict[str, tuple[int, ...]]:
    """numpy shapes (rows, row length) of the llama-like model; real names, shrunk row counts."""
    shapes: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (N_VOCAB, N_EMBD),
        "output_norm.weight": (N_EMBD,),
        "output.weight": (N_OUTPUT_ROWS, N_EMBD),
    }
    for layer in range(n_layers):
        shapes[f"blk.{layer}.attn_norm.weight"] = (N_EMBD,)
        shapes[f"blk.{layer}.ffn_norm.weight"] = (N_EMBD,)
        for matrix in LAYER_MATRICES:
            shapes[f"blk.{layer}.{matrix}.weight"] = (MATRIX_ROWS, N_EMBD)
        shapes[f"blk.{layer}.ffn_down.weight"] = (MATRIX_ROWS, N_FF)
    return shapes


def _bell(seed: int, count: int) -> Floats:
    """Unit-variance bell-shaped values: each raw 64-bit word's four 16-bit quarters summed (Irwin-Hall).

    Only integer arithmetic, one float64 division and one rounding to float32: the same on every machine.
    """
    raw = np.random.PCG64(seed).random_raw(count)
    quarters = (raw[:, None] >> np.array([0, 16, 32, 48], dtype=np.uint64)) & np.uint64(0xFFFF)
    total = quarters.sum(axis=1).astype(np.float64)  # exact: at most 4 * 65535
    bell: Floats = ((total - 2 * 65535.0) / np.sqrt((65536.0**2 - 1) / 3)).astype(np.float32)
    return bell


def _edge_rows(seed: int) -> list[Floats]:
    """Rows of N_EMBD values aimed at the quantisers' special cases (each comment says which)."""
    n = N_EMBD
    bell = _bell(seed, 16 * n).reshape(16, n)
    position = np.arange(n)
    outlier = bell[0] * 0.02
    outlier[100] = 3.0  # one value 150 sigma out: every other sub-block's scale collapses
    sparse = np.where(position % 37 == 0, bell[1], 0)  # most 32-value sub-blocks all zero: d = 0 skips
    bf16 = (bell[2].view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32) * np.float32(0.02)  # ties
    decades = bell[3] * np.repeat([1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7], 32)  # sub-block scales
    half_zero = np.where(position < n // 2, 0, bell[4] * 0.02)
    steps = np.repeat(np.array([0.5, -0.5, 0.25, 0, -1, 2, 0.125, -0.0625]), 32)  # constant sub-blocks
    rows = [
        np.zeros(n),                       # all zero: scales 0, whole Q6_K block zeroed
        outlier,
        bell[5] * 1e-8,                    # tiny: d and dmin underflow float16 to 0
        bell[6] * 1e-5,                    # float16 subnormal d
        np.full(n, 0.0625),                # constant positive: min clamped to 0
        np.full(n, -0.375),                # constant negative: max == min in every sub-block
        sparse,
        np.abs(bell[7]) * 0.01 + 0.05,     # all positive: the fitted min goes above 0
        -np.abs(bell[8]) * 0.01 - 0.05,    # all negative
        bf16,
        np.floor(bell[9] * 3),             # small integers: exact halves in the scale search
        bell[10] * 300.0,                  # large values
        half_zero,
        decades,
        steps,
        bell[11] * bell[12] * 0.02,        # heavy tails (product of two bells)
    ]
    return [np.asarray(row, dtype=np.float32) for row in rows]


def golden_inputs(n_layers: int = N_LAYERS) -> dict[str, Floats]:
    """The golden model's tensors, rebuilt from the recipe (the manifest holds their sha256)."""
    tensors: dict[str, Floats] = {}
    for index, (name, shape) in enumerate(tensor_shapes(n_layers).items()):
        values = _bell(1000 + index, int(np.prod(shape))).reshape(shape)
        values = 1 + values * np.float32(0.05) if name.endswith("_norm.weight") else values * np.float32(0.02)
        tensors[name] = np.ascontiguousarray(values, dtype=np.float32)
    edges = _edge_rows(7)
    tensors["token_embd.weight"][: len(edges)] = np.stack(edges)
    return tensors


def random_inputs(rng: np.random.Generator, n_layers: int = N_LAYERS) -> dict[str, Floats]:
    """Fresh random tensors of the same layout: Gaussian rows at scales spanning five decades."""
    tensors: dict[str, Floats] = {}
    for name, shape in tensor_shapes(n_layers).items():
        if len(shape) == 1:
            tensors[name] = (1 + rng.standard_normal(shape) * 0.05).astype(np.float32)
            continue
        row_scales = 10.0 ** rng.uniform(-4, 1, (shape[0], 1))
        values = rng.standard_t(4, shape) if rng.random() < 0.3 else rng.standard_normal(shape)
        tensors[name] = (values * row_scales).astype(np.float32)
    return tensors


def write_llama_gguf(path: Path, tensors: Mapping[str, Floats], n_layers: int = N_LAYERS, kv_heads: int = 4) -> Path:
    """A minimal llama-architecture GGUF that llama-quantize accepts (it reads the hparams, not the vocab)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("weightwarden-kquant-golden")
    writer.add_block_count(n_layers)
    writer.add_context_length(256)
    writer.add_embedding_length(N_EMBD)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(4)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(N_VOCAB)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for name, values in tensors.items():
        writer.add_tensor(name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@dataclass(frozen=True)
class Written:
    """One tensor as a GGUF file holds it: its ggml type name and its raw bytes."""

    type_name: str
    data: bytes


def read_gguf_tensors(path: Path) -> dict[str, Written]:
    reader = gguf.GGUFReader(str(path))
    return {
        tensor.name: Written(gguf.GGMLQuantizationType(tensor.tensor_type).name, tensor.data.tobytes())
        for tensor in reader.tensors
    }


def run_llama_quantize(binary: str, run: Run, inputs: Mapping[str, Floats], workdir: Path) -> dict[str, Written]:
    """Write the run's llama GGUF (the `inputs` it `holds`), quantise it, read the result back."""
    chosen = {name: values for name, values in inputs.items() if run.holds(name)}
    stem = run.name.replace(" ", "_")
    source = write_llama_gguf(workdir / f"{stem}-f32.gguf", chosen, run.n_layers, run.kv_heads)
    target = workdir / f"{stem}.gguf"
    result = subprocess.run(run.arguments(binary, source, target), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"llama-quantize failed for {run.name!r}:\n{result.stdout}\n{result.stderr}")
    return read_gguf_tensors(target)


def input_hashes(inputs: Mapping[str, Floats]) -> dict[str, str]:
    return {name: hashlib.sha256(values.tobytes()).hexdigest() for name, values in inputs.items()}


@dataclass(frozen=True)
class Golden:
    """The stored golden data: per run, per tensor, the type llama-quantize chose and its bytes."""

    commit: str
    hashes: dict[str, str]
    runs: dict[str, dict[str, str]]
    data: dict[str, bytes]  # "<tensor>@<type>" -> the bytes llama-quantize wrote

    def written(self, tensor: str, type_name: str) -> bytes:
        return self.data[f"{tensor}@{type_name}"]


def load_golden(directory: Path = DATA_DIR) -> Golden:
    manifest = json.loads((directory / "manifest.json").read_text())
    data = {f"{name}@{tensor.type_name}": tensor.data
            for type_name in STORED_TYPES
            for name, tensor in read_gguf_tensors(directory / f"{type_name}.gguf").items()}
    return Golden(manifest["llama_cpp_commit"], manifest["input_sha256"], manifest["runs"], data)


def regenerate(binary: str, directory: Path = DATA_DIR,
               runs: Sequence[Run] = RUNS, log: Callable[[str], None] = print) -> None:
    """Run llama-quantize for every golden run and store what it wrote (quantised tensors only)."""
    inputs = golden_inputs()
    types: dict[str, dict[str, str]] = {}
    data: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for run in runs:
            run_inputs = inputs if run.n_layers == N_LAYERS else golden_inputs(run.n_layers)
            written = run_llama_quantize(binary, run, run_inputs, Path(scratch))
            types[run.name] = {name: tensor.type_name for name, tensor in written.items()}
            for name, tensor in written.items():
                if tensor.type_name == "F32" or not run.keep_bytes:
                    continue
                key = f"{name}@{tensor.type_name}"
                if data.setdefault(key, tensor.data) != tensor.data:
                    raise RuntimeError(f"two runs wrote different bytes for {key}")
            log(f"{run.name}: {sorted(set(types[run.name].values()))}")
    directory.mkdir(parents=True, exist_ok=True)
    shapes = tensor_shapes()
    for type_name in STORED_TYPES:
        writer = gguf.GGUFWriter(str(directory / f"{type_name}.gguf"), "llama")
        writer.add_name(f"llama-quantize {type_name} output for the weightwarden K-quant golden model")
        for key, value in sorted(data.items()):
            name, written_type = key.split("@")
            if written_type == type_name:
                rows = np.frombuffer(value, dtype=np.uint8).reshape(shapes[name][0], -1)
                writer.add_tensor(name, rows, raw_dtype=gguf.GGMLQuantizationType[type_name])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    manifest = {"llama_cpp_commit": LLAMA_CPP_COMMIT, "input_sha256": input_hashes(inputs), "runs": types}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.similarity.kquants_golden /path/to/llama-quantize")
    regenerate(sys.argv[1])
