"""A Hugging Face llama state dict as llama.cpp ships it: convert_hf_to_gguf.py, then llama-quantize.

Converting (llama.cpp convert_hf_to_gguf.py, `LlamaModel.modify_tensors`): names go through gguf-py's own
tensor map (`model.layers.0.self_attn.q_proj.weight` -> `blk.0.attn_q.weight`, `lm_head.weight` ->
`output.weight`), the rows of attn_q and attn_k are permuted from Hugging Face's rotate-half RoPE order back
to the interleaved order llama.cpp's kernel expects, 1-D norm weights stay F32 and matrices become F16.
There is no tokenizer here, so none of the converter's `tokenizer.ggml.*` keys are written.

Quantising (llama.cpp src/llama-quant.cpp, read at 007dbbf3fd17eefe9b47fee45f48f7ba5e62b714): llama-quantize
reads that F16 file, takes each matrix back to float32, picks its type with `llama_tensor_get_type` (the
ftype's default type, raised for some tensors by the `_M` mixes and for output.weight, then moved to a type
the row length allows) and writes the tensors in its loader's order (`weight_name_comparer`: non-layer
tensors first, then by layer number, by name within a layer). Only the file types below are implemented.

Checked once against llama.cpp itself (0c1e570, as vendored by llama-cpp-python 0.3.36): llama-quantize
run on our F16 file writes exactly our Q8_0, Q5_0, Q4_0, Q6_K, Q5_K_M and Q4_K_M files, for the default
model, the 384-wide one (where every K type falls back) and a pruned one; and llama.cpp's own forward pass
on our F16 file gives the torch model's logits (within float16 rounding; without the Q/K permutation it
is 150 times further off).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt
from gguf import GGMLQuantizationType as Q
from gguf import LlamaFileType

from tests.similarity import kquants

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FileType:
    """One llama-quantize file type: the GGUF `general.file_type` and the default tensor type."""

    name: str
    file_type: LlamaFileType
    default: Q


FILE_TYPES = {ft.name: ft for ft in (
    FileType("F16", LlamaFileType.MOSTLY_F16, Q.F16),
    FileType("Q8_0", LlamaFileType.MOSTLY_Q8_0, Q.Q8_0),
    FileType("Q5_0", LlamaFileType.MOSTLY_Q5_0, Q.Q5_0),
    FileType("Q4_0", LlamaFileType.MOSTLY_Q4_0, Q.Q4_0),
    FileType("Q6_K", LlamaFileType.MOSTLY_Q6_K, Q.Q6_K),
    FileType("Q5_K_M", LlamaFileType.MOSTLY_Q5_K_M, Q.Q5_K),
    FileType("Q4_K_M", LlamaFileType.MOSTLY_Q4_K_M, Q.Q4_K),
)}

K_QUANTISERS = {Q.Q4_K: kquants.quantize_q4_k, Q.Q5_K: kquants.quantize_q5_k, Q.Q6_K: kquants.quantize_q6_k}
# gguf-py writes these itself; checked byte for byte against ggml's `ggml_quantize_chunk`.
GGUF_PY_QUANTISERS = (Q.Q8_0, Q.Q5_0, Q.Q5_1, Q.Q4_0)


@dataclass(frozen=True)
class LlamaHyper:
    """What the converter writes under `llama.*`."""

    hidden: int
    layers: int
    ffn: int
    vocab: int
    heads: int
    kv_heads: int
    context: int
    rms_eps: float
    rope_theta: float


def permute_rope_rows(weight: FloatArray, heads: int) -> FloatArray:
    """convert_hf_to_gguf.py `LlamaModel.permute`: per head, rows [r0..r(d/2-1), r(d/2)..] become
    interleaved [r0, r(d/2), r1, r(d/2+1), ...] (Hugging Face's checkpoint converter had done the reverse)."""
    rows = weight.shape[0]
    return (weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2)
            .reshape(weight.shape))


def converted(state: Mapping[str, FloatArray], hyper: LlamaHyper) -> dict[str, FloatArray]:
    """Hugging Face names and row order -> GGUF names and row order, float32, in the converter's order: it
    reads a safetensors file through gguf-py's SafetensorsLocal, which sorts the tensors by name (so
    `lm_head` comes first and `model.layers.10` before `model.layers.2`)."""
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, hyper.layers)
    out: dict[str, FloatArray] = {}
    for hf_name, value in sorted(state.items()):
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise KeyError(f"no GGUF name for {hf_name}")
        data = np.asarray(value, dtype=np.float32)
        if hf_name.endswith("q_proj.weight"):
            data = permute_rope_rows(data, hyper.heads)
        elif hf_name.endswith("k_proj.weight"):
            data = permute_rope_rows(data, hyper.kv_heads)
        out[name] = data
    return out


# --- llama-quant.cpp, the parts that decide a tensor's type for the file types above -------------------

CATEGORY_BY_NAME = (  # tensor_get_category: the first rule that matches
    ("output", lambda n: n == "output.weight"),
    ("token_embd", lambda n: n in ("token_embd.weight", "per_layer_token_embd.weight")),
    ("attn_qkv", lambda n: "attn_qkv.weight" in n),
    ("attn_kv_b", lambda n: "attn_kv_b.weight" in n),
    ("attn_v", lambda n: "attn_v.weight" in n),
    ("attn_k", lambda n: "attn_k.weight" in n),
    ("attn_q", lambda n: "attn_q.weight" in n),
    ("attn_output", lambda n: "attn_output.weight" in n),
    ("ffn_up", lambda n: "ffn_up" in n),
    ("ffn_gate", lambda n: "ffn_gate" in n),
    ("ffn_down", lambda n: "ffn_down" in n),
)
ATTN_V_LIKE = ("attn_v", "attn_qkv", "attn_kv_b")  # category_is_attn_v
# tensor_type_fallback: a K-quant whose block does not divide the row length becomes a 32-block type; a
# row length no 32-block type fits becomes F16; other types have no fallback (llama.cpp throws).
FALLBACK = {Q.Q4_K: Q.Q5_0, Q.Q5_K: Q.Q5_1, Q.Q6_K: Q.Q8_0}


def category(name: str) -> str:
    return next((label for label, rule in CATEGORY_BY_NAME if rule(name)), "other")


def allows_quantization(name: str, ndim: int) -> bool:
    """tensor_allows_quantization, the rules that can apply to a llama model."""
    return ndim >= 2 and name.endswith("weight") and "_norm.weight" not in name


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def block_size(qtype: Q) -> int:
    return gguf.GGML_QUANT_SIZES[qtype][0]


def loader_order(names: list[str]) -> list[str]:
    """llama_model_loader's `weight_name_comparer`: layer number (-1 for none) first, then the name."""
    def key(name: str) -> tuple[int, str]:
        found = re.match(r"blk\.(\d+)\.", name)
        return (int(found.group(1)) if found else -1, name)
    return sorted(names, key=key)


def quantised_types(shapes: Mapping[str, tuple[int, ...]], file_type: str, n_layer: int) -> dict[str, Q]:
    """The type llama-quantize gives each tensor (shapes in numpy order: rows, row length), no imatrix, no
    overrides, llama architecture, no experts. Returned in the order llama-quantize writes them."""
    ftype = FILE_TYPES[file_type]
    if ftype.default == Q.F16:
        raise ValueError("F16 is what convert_hf_to_gguf.py writes; llama-quantize is not involved")
    order = loader_order(list(shapes))
    categories = {name: category(name) for name in order}
    n_attention_wv = sum(1 for c in categories.values() if c in ATTN_V_LIKE)
    tied = "output" not in categories.values()  # has_tied_embeddings
    i_attention_wv = i_ffn_down = 0
    chosen: dict[str, Q] = {}
    for name in order:
        shape = shapes[name]
        if not allows_quantization(name, len(shape)):
            chosen[name] = Q.F32 if len(shape) < 2 else Q.F16  # as the F16 input file holds it
            continue
        cat, row_length = categories[name], shape[-1]
        new: Q = ftype.default
        if cat == "output" or (tied and cat == "token_embd"):
            if row_length % block_size(new) != 0:
                new = Q.Q8_0
            elif new != Q.Q8_0:
                new = Q.Q6_K
        elif cat == "token_embd":
            pass  # only the IQ and TQ/Q2_0 file types change it
        elif cat in ATTN_V_LIKE:
            if file_type in ("Q4_K_M", "Q5_K_M") and use_more_bits(i_attention_wv, n_attention_wv):
                new = Q.Q6_K
            i_attention_wv += 1
        elif cat == "ffn_down":
            # n_expert is 1, so layer_info keeps the running count as the layer
            if file_type in ("Q4_K_M", "Q5_K_M") and use_more_bits(i_ffn_down, n_layer):
                new = Q.Q6_K
            i_ffn_down += 1
        # attn_k, attn_q, attn_output, ffn_gate and ffn_up keep the default for these file types
        if row_length % block_size(new) != 0:
            if new not in FALLBACK:
                raise ValueError(f"llama-quantize has no fallback for {name} ({row_length} per row) in {new.name}")
            new = FALLBACK[new]
            if row_length % block_size(new) != 0:
                new = Q.F16
        chosen[name] = new
    return chosen


def encoded(values: FloatArray, qtype: Q) -> npt.NDArray[np.generic]:
    if qtype == Q.F32:
        return values.astype(np.float32)
    if qtype == Q.F16:
        return values.astype(np.float16)
    if qtype in K_QUANTISERS:
        return K_QUANTISERS[qtype](values)
    if qtype in GGUF_PY_QUANTISERS:
        return gguf.quants.quantize(values, qtype)
    raise ValueError(f"no writer for {qtype.name}")


def write(path: Path, state: Mapping[str, FloatArray], hyper: LlamaHyper, file_type: str, name: str) -> Path:
    """Write `state` (Hugging Face names, float32) as llama.cpp would have: converted, then quantised."""
    ftype = FILE_TYPES[file_type]
    tensors = converted(state, hyper)
    if ftype.default == Q.F16:
        order = list(tensors)
        types = {n: (Q.F16 if v.ndim >= 2 else Q.F32) for n, v in tensors.items()}
    else:
        types = quantised_types({n: v.shape for n, v in tensors.items()}, file_type, hyper.layers)
        order = list(types)
        # llama-quantize starts from the F16 file: its matrices are float16 values taken back to float32
        tensors = {n: (v.astype(np.float16).astype(np.float32) if v.ndim >= 2 else v) for n, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_vocab_size(hyper.vocab)
    writer.add_context_length(hyper.context)
    writer.add_embedding_length(hyper.hidden)
    writer.add_block_count(hyper.layers)
    writer.add_feed_forward_length(hyper.ffn)
    writer.add_rope_dimension_count(hyper.hidden // hyper.heads)
    writer.add_head_count(hyper.heads)
    writer.add_head_count_kv(hyper.kv_heads)
    writer.add_layer_norm_rms_eps(hyper.rms_eps)
    writer.add_rope_freq_base(hyper.rope_theta)
    if ftype.default == Q.F16:  # the converter: file type with the parameters, quantization version last
        writer.add_file_type(ftype.file_type)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    else:  # llama-quantize copies the input's keys, then sets these two, which moves them to the end
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_file_type(ftype.file_type)
    for tensor_name in order:
        qtype = types[tensor_name]
        data = encoded(tensors[tensor_name], qtype)
        writer.add_tensor(tensor_name, data, raw_dtype=qtype if data.dtype == np.uint8 else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
