"""Model files of a stolen model after it was changed, written by the real libraries, for tests and benchmarks.

The story: a company pretrained nothing itself; it took a public llama-shaped model (`public_base`) and
fine-tuned it with its first layers and embeddings frozen (`private_model`). That private model is what the
agent protects. Someone copies it and changes it before it leaves: casts it, converts it to GGUF and
quantises it, merges a LoRA into it, fine-tunes it a little further, prunes it, exports it to ONNX or
TorchScript, quantises it to int8 with optimum-quanto, or several of these. Beside those copies stand the
models a similarity print must not confuse with it: the public base it came from, a sibling fine-tuned from
the same base by someone else, unrelated models, and the same recipe at another size.

Everything is seeded; models are memoised within a process (each call returns a fresh copy). Writers take a
model and a directory and return what they wrote. `write_all` writes the whole set and labels each file.
No detection here: files only.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import prune

from tests.similarity import llama_gguf, tiny_llama
from tests.similarity.hf_cache import hf_cache_entry
from tests.similarity.tiny_llama import LlamaShape, TinyLlama

__all__ = [
    "FILE_TYPES", "PRIVATE_FROZEN", "TRANSFORMATIONS", "Artefact", "LlamaShape", "TinyLlama", "fine_tune",
    "hf_cache_entry", "merge_lora", "other_size_model", "private_model", "prune_magnitude", "public_base",
    "sibling_model", "unrelated_model", "write_all", "write_fine_tuned_q4_k_m", "write_further_fine_tune",
    "write_gguf", "write_lora_merged", "write_onnx", "write_onnx_default", "write_pruned", "write_pruned_q8_0",
    "write_quanto_int8", "write_safetensors", "write_torchscript",
]

BASE_SEED = 7
PRIVATE_SEED = 1001  # the private fine-tune's corpus
SIBLING_SEED = 2002
UNRELATED_SEEDS = (11, 12)
FURTHER_SEED = 3003  # the thief's own fine-tune
LORA_SEED = 4004
# The way companies fine-tune on a budget: embeddings and the first two decoder layers stay as released.
PRIVATE_FROZEN = ("model.embed_tokens.*", "model.layers.0.*", "model.layers.1.*")
FINE_TUNE_STEPS = 20
FINE_TUNE_LR = 1e-4
FILE_TYPES = tuple(llama_gguf.FILE_TYPES)  # F16, Q8_0, Q5_0, Q4_0, Q6_K, Q5_K_M, Q4_K_M
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


# --- families and lineages ---------------------------------------------------------------------------------

def public_base(seed: int = BASE_SEED, *, hidden: int = 256, layers: int = 4, ffn: int = 704,
                vocab: int = 2000) -> TinyLlama:
    """A released base model: initialised from `seed`, then pretrained for a few dozen Adam steps."""
    return tiny_llama.pretrained(LlamaShape(seed=seed, hidden=hidden, layers=layers, ffn=ffn, vocab=vocab))


def fine_tune(model: TinyLlama, seed: int, steps: int = FINE_TUNE_STEPS, lr: float = FINE_TUNE_LR,
              frozen: Sequence[str] = ()) -> TinyLlama:
    """A new model: `model` trained further on corpus `seed`; names matching a `frozen` fnmatch pattern
    (`model.layers.0.*`) keep their values bit for bit."""
    return tiny_llama.fine_tuned(model, seed=seed, steps=steps, lr=lr, frozen=frozen)


@functools.cache
def _private_state() -> dict[str, torch.Tensor]:
    return fine_tune(public_base(), PRIVATE_SEED, frozen=PRIVATE_FROZEN).state_dict()


@functools.cache
def _sibling_state(seed: int) -> dict[str, torch.Tensor]:
    return fine_tune(public_base(), seed).state_dict()


def private_model() -> TinyLlama:
    """The protected model: `public_base()` fine-tuned on corpus PRIVATE_SEED with PRIVATE_FROZEN frozen."""
    return tiny_llama.from_state(LlamaShape(seed=BASE_SEED), _private_state())


def sibling_model(seed: int = SIBLING_SEED) -> TinyLlama:
    """Another company's fine-tune of the same public base, nothing frozen."""
    return tiny_llama.from_state(LlamaShape(seed=BASE_SEED), _sibling_state(seed))


def unrelated_model(seed: int = UNRELATED_SEEDS[0]) -> TinyLlama:
    """Same architecture and size, another initialisation and corpus."""
    return public_base(seed)


def other_size_model(seed: int = BASE_SEED) -> TinyLlama:
    """The base recipe at another size: hidden 384, 6 layers (and a wider MLP)."""
    return public_base(seed, hidden=384, layers=6, ffn=1024)


# --- changes to a model ------------------------------------------------------------------------------------

class LoRALinear(nn.Module):
    """peft's LoRA on a Linear: y = W x + (alpha / r) * B A x, A Kaiming-uniform, B zero, W frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling
        return out

    def merged(self) -> nn.Linear:
        """peft's merge_and_unload: W + scaling * B @ A, written back into the original Linear."""
        with torch.no_grad():
            self.base.weight += self.scaling * (self.lora_B.weight @ self.lora_A.weight)
        return self.base


def merge_lora(model: TinyLlama, seed: int = LORA_SEED, *, rank: int = 8, alpha: float = 16.0, steps: int = 10,
               lr: float = 1e-3, targets: Sequence[str] = ("q_proj", "v_proj")) -> TinyLlama:
    """Train a rank-`rank` LoRA on the `targets` projections of every layer, then merge it in."""
    tuned = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in tuned.model.layers:
            for target in targets:
                setattr(layer.self_attn, target, LoRALinear(getattr(layer.self_attn, target), rank, alpha))
    base_weights = [name for name, _ in tuned.named_parameters() if ".lora_" not in name]
    tiny_llama.train(tuned, seed=seed, steps=steps, lr=lr, frozen=base_weights)
    for layer in tuned.model.layers:
        for target in targets:
            setattr(layer.self_attn, target, getattr(layer.self_attn, target).merged())
    return tuned


def prune_magnitude(model: TinyLlama, amount: float = 0.5) -> TinyLlama:
    """torch's L1 unstructured pruning of every Linear and Embedding weight, made permanent."""
    pruned = copy.deepcopy(model)
    for module in pruned.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            prune.l1_unstructured(module, name="weight", amount=amount)  # type: ignore[no-untyped-call]
            prune.remove(module, "weight")  # type: ignore[no-untyped-call]
    return pruned


# --- writers -----------------------------------------------------------------------------------------------

def write_safetensors(model: TinyLlama, directory: Path, dtype: str = "fp32",
                      name: str = "model.safetensors") -> Path:
    """`save_file` as transformers' save_pretrained calls it: the state dict cast to `dtype`, format pt."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(DTYPES[dtype]).contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": "pt"})
    return path


def write_gguf(model: TinyLlama, directory: Path, file_type: str = "F16", name: str = "model") -> Path:
    """convert_hf_to_gguf.py (F16), then llama-quantize to `file_type`: `<name>-<file_type>.gguf`."""
    shape = model.shape
    hyper = llama_gguf.LlamaHyper(hidden=shape.hidden, layers=shape.layers, ffn=shape.ffn, vocab=shape.vocab,
                                  heads=shape.heads, kv_heads=shape.heads, context=shape.context,
                                  rms_eps=tiny_llama.RMS_EPS, rope_theta=tiny_llama.ROPE_THETA)
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    return llama_gguf.write(directory / f"{name}-{file_type}.gguf", state, hyper, file_type, name)


def write_onnx(model: TinyLlama, directory: Path) -> Path:
    """`torch.onnx.export` to model.onnx. torch 2.13's default (dynamo) exporter needs onnxscript, which is not
    installed, so this is the TorchScript-based exporter (`dynamo=False`), which torch 2.13 marks deprecated.
    It constant-folds `Transpose(W)` into each MatMul: every Linear weight is stored transposed ([in, out])
    under a generated name (`onnx::MatMul_739`); the embedding and the norms keep their names and layout;
    identical initializers are stored once. All are inline `raw_data`, no external data."""
    path = directory / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randint(0, model.shape.vocab, (1, 16), generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*(legacy TorchScript-based ONNX|"
                                "feature will be removed).*")
        dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input_ids"],
                          output_names=["logits"], dynamic_axes=dynamic)
    return path


def write_onnx_default(model: TinyLlama, directory: Path) -> list[Path]:
    """`torch.onnx.export` with torch's defaults (the torch.export-based exporter, which needs onnxscript):
    the graph in model.onnx, every initializer in the external data file model.onnx.data."""
    path = directory / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randint(0, model.shape.vocab, (1, 16), generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path))
    return sorted(directory.iterdir())


def write_torchscript(model: TinyLlama, directory: Path) -> Path:
    """`torch.jit.trace` + `torch.jit.save` to model.pt (both deprecated in torch 2.13, both still work)."""
    path = directory / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randint(0, model.shape.vocab, (1, 16), generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit\..*` is deprecated")
        traced = torch.jit.trace(model, (example,))  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))
    return path


def write_quanto_int8(model: TinyLlama, directory: Path) -> list[Path]:
    """optimum-quanto: quantize(weights=qint8) + freeze, saved as its README says: `save_file` of the state
    dict (every Linear's `weight._data` int8 [out, in] and `weight._scale` float32 [out, 1], plus scalar
    `input_scale`/`output_scale`; the Embedding stays float32) and the quantization map (quanto_qmap.json)."""
    from optimum.quanto import freeze, qint8, quantization_map, quantize  # type: ignore[import-untyped]

    quantised = copy.deepcopy(model)
    quantize(quantised, weights=qint8)
    freeze(quantised)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "model.safetensors"
    save_file({k: v.contiguous() for k, v in quantised.state_dict().items()}, str(weights), metadata={"format": "pt"})
    qmap = directory / "quanto_qmap.json"
    qmap.write_text(json.dumps(quantization_map(quantised), indent=2))
    return [weights, qmap]


def write_lora_merged(model: TinyLlama, directory: Path) -> Path:
    return write_safetensors(merge_lora(model), directory, "fp16")


def write_further_fine_tune(model: TinyLlama, directory: Path) -> Path:
    return write_safetensors(fine_tune(model, FURTHER_SEED, steps=10), directory, "fp16")


def write_pruned(model: TinyLlama, directory: Path) -> Path:
    return write_safetensors(prune_magnitude(model), directory, "fp16")


def write_fine_tuned_q4_k_m(model: TinyLlama, directory: Path) -> Path:
    return write_gguf(fine_tune(model, FURTHER_SEED, steps=10), directory, "Q4_K_M")


def write_pruned_q8_0(model: TinyLlama, directory: Path) -> Path:
    return write_gguf(prune_magnitude(model), directory, "Q8_0")


def _one(writer: Callable[[TinyLlama, Path], Path]) -> Callable[[TinyLlama, Path], list[Path]]:
    return lambda model, directory: [writer(model, directory)]


def _gguf(file_type: str) -> Callable[[TinyLlama, Path], list[Path]]:
    return lambda model, directory: [write_gguf(model, directory, file_type)]


def _safetensors(dtype: str) -> Callable[[TinyLlama, Path], list[Path]]:
    return lambda model, directory: [write_safetensors(model, directory, dtype)]


# Every change, by name: each writes into the directory it is given and returns the files.
TRANSFORMATIONS: dict[str, Callable[[TinyLlama, Path], list[Path]]] = {
    **{f"safetensors-{dtype}": _safetensors(dtype) for dtype in DTYPES},
    **{f"gguf-{file_type}": _gguf(file_type) for file_type in FILE_TYPES},
    "lora-merged": _one(write_lora_merged),
    "fine-tuned": _one(write_further_fine_tune),
    "pruned-50": _one(write_pruned),
    "onnx": _one(write_onnx),
    "onnx-default": write_onnx_default,
    "torchscript": _one(write_torchscript),
    "int8-quanto": write_quanto_int8,
    "fine-tuned+gguf-Q4_K_M": _one(write_fine_tuned_q4_k_m),
    "pruned+gguf-Q8_0": _one(write_pruned_q8_0),
}
# What the models a print must not confuse with the private one are written as.
CONTROL_TRANSFORMATIONS = ("safetensors-fp16", "gguf-Q8_0", "gguf-Q4_K_M")

Relation = Literal["original", "derived", "ancestor", "sibling", "unrelated", "other-size"]


@dataclass(frozen=True)
class Artefact:
    """One written model file set and what it is to the private model: a print should call `original` and
    `derived` copies of it, and nothing else."""

    model: str  # private, public-base, sibling, unrelated-11, other-size
    transformation: str  # a TRANSFORMATIONS key, or "original"
    relation: Relation
    paths: tuple[Path, ...]

    @property
    def is_copy_of_private(self) -> bool:
        return self.relation in ("original", "derived")


def write_all(directory: Path, transformations: Sequence[str] = tuple(TRANSFORMATIONS)) -> list[Artefact]:
    """The private model as fp32 safetensors, each of `transformations` of it, and the controls (public base,
    sibling, two unrelated models, the other size) in CONTROL_TRANSFORMATIONS; one folder each."""
    written = []
    private = private_model()
    written.append(Artefact("private", "original", "original",
                            (write_safetensors(private, directory / "private" / "original"),)))
    for change in transformations:
        paths = TRANSFORMATIONS[change](private, directory / "private" / change)
        written.append(Artefact("private", change, "derived", tuple(paths)))
    controls: list[tuple[str, Relation, TinyLlama]] = [
        ("public-base", "ancestor", public_base()),
        ("sibling", "sibling", sibling_model()),
        *((f"unrelated-{seed}", "unrelated", unrelated_model(seed)) for seed in UNRELATED_SEEDS),
        ("other-size", "other-size", other_size_model()),
    ]
    for name, relation, model in controls:
        for change in CONTROL_TRANSFORMATIONS:
            paths = TRANSFORMATIONS[change](model, directory / name / change)
            written.append(Artefact(name, change, relation, tuple(paths)))
    return written
