"""The derived-copy factory writes what the real tools write, and its readers agree: safetensors, gguf-py's
GGUFReader (tensor types of llama-quantize's mixes), onnx, torch.jit, optimum-quanto, huggingface_hub."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from tests.similarity import hf_cache, kquants, llama_gguf

# --- K-quant encoders ----------------------------------------------------------------------------------------


def k_quant_sample() -> np.ndarray:
    """Float16-valued rows as llama-quantize sees them: normal, heavy-tailed, positive, half-zero, sparse."""
    rng = np.random.default_rng(2024)
    rows = rng.standard_normal((48, 512)).astype(np.float32) * 0.02
    rows[:8] = (rng.standard_t(3, (8, 512)) * 0.02).astype(np.float32)
    rows[8:12] = np.abs(rows[8:12])
    rows[12:14, :256] = 0.0
    rows[14:16] *= rng.random((2, 512)) < 0.5
    return rows.astype(np.float16).astype(np.float32)


# SHA-256 of ggml's own `ggml_quantize_chunk` output for k_quant_sample() (ggml-org/ggml d99724f, Release
# build, no importance matrix): the encoders must write the same bytes.
GGML_DIGESTS = {
    Q.Q4_K: "6ff0d2e9c966e6fe1e788f8ec6ae8142e88b60dc2ef7d9534e12f038310ef677",
    Q.Q5_K: "39dce726c4d013f1c79cde147e615e03acaca39940625bc9cd4bafe371cefaa5",
    Q.Q6_K: "20a1171dc5e2c75a604d28828900438a7c459876b994706c0562a2c2dee8ed88",
}
# Root-mean-square error of a round trip, relative to the weights' spread, that each type stays under.
ROUND_TRIP = {Q.F32: 1e-7, Q.F16: 1e-3, Q.Q8_0: 0.01, Q.Q6_K: 0.03, Q.Q5_1: 0.05, Q.Q5_K: 0.05, Q.Q5_0: 0.06,
              Q.Q4_K: 0.1, Q.Q4_0: 0.12}


@pytest.mark.parametrize("qtype", list(GGML_DIGESTS), ids=lambda q: q.name)
def test_k_quant_encoders_write_ggml_bytes(qtype: Q) -> None:
    written = llama_gguf.K_QUANTISERS[qtype](k_quant_sample())
    assert hashlib.sha256(written.tobytes()).hexdigest() == GGML_DIGESTS[qtype]


@pytest.mark.parametrize("qtype", list(GGML_DIGESTS), ids=lambda q: q.name)
def test_k_quants_read_back_with_gguf_py(qtype: Q) -> None:
    rows = np.random.default_rng(5).standard_normal((64, 768)).astype(np.float32) * 0.02
    written = llama_gguf.K_QUANTISERS[qtype](rows)
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    assert written.dtype == np.uint8 and written.shape == (64, 768 // block * size)
    back = gguf.quants.dequantize(written, qtype)
    assert back.shape == rows.shape
    assert np.sqrt(np.mean((back - rows) ** 2)) / rows.std() < ROUND_TRIP[qtype]


def test_k_quants_refuse_rows_that_are_not_whole_blocks() -> None:
    with pytest.raises(ValueError, match="multiple of 256"):
        kquants.quantize_q4_k(np.zeros((4, 704), dtype=np.float32))


# --- llama.cpp's conversion and quantisation rules, as data ---------------------------------------------------

def shapes(hidden: int, layers: int, ffn: int, vocab: int = 2000) -> dict[str, tuple[int, ...]]:
    found: dict[str, tuple[int, ...]] = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,),
                                         "output.weight": (vocab, hidden)}
    for i in range(layers):
        found |= {f"blk.{i}.attn_norm.weight": (hidden,), f"blk.{i}.ffn_norm.weight": (hidden,),
                  **{f"blk.{i}.attn_{p}.weight": (hidden, hidden) for p in ("q", "k", "v", "output")},
                  f"blk.{i}.ffn_gate.weight": (ffn, hidden), f"blk.{i}.ffn_up.weight": (ffn, hidden),
                  f"blk.{i}.ffn_down.weight": (hidden, ffn)}
    return found


# llama-quantize's choice per tensor kind for the default 4-layer model (rows of 256, ffn_down rows of 704):
# (kind, layers) -> type. attn_v and ffn_down get more bits in layers 2 and 3 (use_more_bits); K types that
# do not divide 704 fall back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0).
SMALL_MIXES: dict[str, dict[str, Q]] = {
    "Q4_K_M": {"token_embd": Q.Q4_K, "output": Q.Q6_K, "attn_q": Q.Q4_K, "attn_k": Q.Q4_K, "attn_output": Q.Q4_K,
               "attn_v@0,1": Q.Q4_K, "attn_v@2,3": Q.Q6_K, "ffn_gate": Q.Q4_K, "ffn_up": Q.Q4_K,
               "ffn_down@0,1": Q.Q5_0, "ffn_down@2,3": Q.Q8_0},
    "Q5_K_M": {"token_embd": Q.Q5_K, "output": Q.Q6_K, "attn_q": Q.Q5_K, "attn_k": Q.Q5_K, "attn_output": Q.Q5_K,
               "attn_v@0,1": Q.Q5_K, "attn_v@2,3": Q.Q6_K, "ffn_gate": Q.Q5_K, "ffn_up": Q.Q5_K,
               "ffn_down@0,1": Q.Q5_1, "ffn_down@2,3": Q.Q8_0},
    "Q6_K": {"token_embd": Q.Q6_K, "output": Q.Q6_K, "attn_q": Q.Q6_K, "attn_k": Q.Q6_K, "attn_output": Q.Q6_K,
             "attn_v": Q.Q6_K, "ffn_gate": Q.Q6_K, "ffn_up": Q.Q6_K, "ffn_down": Q.Q8_0},
    "Q4_0": {"token_embd": Q.Q4_0, "output": Q.Q6_K, "attn_q": Q.Q4_0, "attn_k": Q.Q4_0, "attn_output": Q.Q4_0,
             "attn_v": Q.Q4_0, "ffn_gate": Q.Q4_0, "ffn_up": Q.Q4_0, "ffn_down": Q.Q4_0},
    "Q5_0": {"token_embd": Q.Q5_0, "output": Q.Q6_K, "attn_q": Q.Q5_0, "attn_k": Q.Q5_0, "attn_output": Q.Q5_0,
             "attn_v": Q.Q5_0, "ffn_gate": Q.Q5_0, "ffn_up": Q.Q5_0, "ffn_down": Q.Q5_0},
    "Q8_0": {"token_embd": Q.Q8_0, "output": Q.Q8_0, "attn_q": Q.Q8_0, "attn_k": Q.Q8_0, "attn_output": Q.Q8_0,
             "attn_v": Q.Q8_0, "ffn_gate": Q.Q8_0, "ffn_up": Q.Q8_0, "ffn_down": Q.Q8_0},
}


def expand(mix: dict[str, Q], layers: int) -> dict[str, Q]:
    out = {"output_norm.weight": Q.F32}
    for key, qtype in mix.items():
        kind, _, picked = key.partition("@")
        if kind in ("token_embd", "output"):
            out[f"{kind}.weight"] = qtype
            continue
        for i in ([int(x) for x in picked.split(",")] if picked else range(layers)):
            out[f"blk.{i}.{kind}.weight"] = qtype
    for i in range(layers):
        out |= {f"blk.{i}.attn_norm.weight": Q.F32, f"blk.{i}.ffn_norm.weight": Q.F32}
    return out


@pytest.mark.parametrize("file_type", list(SMALL_MIXES))
def test_quantised_types_follow_llama_quant(file_type: str) -> None:
    chosen = llama_gguf.quantised_types(shapes(256, 4, 704), file_type, 4)
    assert chosen == expand(SMALL_MIXES[file_type], 4)
    # llama-quantize writes in its loader's order: non-layer tensors by name, then layer by layer
    assert list(chosen)[:4] == ["output.weight", "output_norm.weight", "token_embd.weight", "blk.0.attn_k.weight"]


def exact_state(layers: int = 2, hidden: int = 256, ffn: int = 704, vocab: int = 300) -> dict[str, np.ndarray]:
    """Llama weights from PCG64's raw stream and exact arithmetic only: the same floats on every platform."""
    bits = np.random.PCG64(1234)

    def matrix(rows: int, cols: int) -> np.ndarray:
        raw = np.asarray(bits.random_raw(rows * cols * 4), dtype=np.uint64).reshape(4, rows, cols) >> np.uint64(40)
        return np.asarray((raw.astype(np.float64) / 2**24 - 0.5).sum(axis=0) * 0.02, dtype=np.float32)

    state = {"model.embed_tokens.weight": matrix(vocab, hidden)}
    for i in range(layers):
        prefix = f"model.layers.{i}."
        for n in ("q", "k", "v", "o"):
            state[prefix + f"self_attn.{n}_proj.weight"] = matrix(hidden, hidden)
        state[prefix + "mlp.gate_proj.weight"] = matrix(ffn, hidden)
        state[prefix + "mlp.up_proj.weight"] = matrix(ffn, hidden)
        state[prefix + "mlp.down_proj.weight"] = matrix(hidden, ffn)
        state[prefix + "input_layernorm.weight"] = (1 + matrix(1, hidden)[0]).astype(np.float32)
        state[prefix + "post_attention_layernorm.weight"] = (1 + matrix(1, hidden)[0]).astype(np.float32)
    state["model.norm.weight"] = (1 + matrix(1, hidden)[0]).astype(np.float32)
    state["lm_head.weight"] = matrix(vocab, hidden)
    return state


# SHA-256 of the file llama.cpp's own llama-quantize (0c1e570, no imatrix) made from our F16 file of
# exact_state(): ours must be the same file, byte for byte (tensor order, types, bytes, keys, padding).
LLAMA_QUANTIZE_DIGESTS = {
    "Q8_0": "eff2a594e2d807266e503c7a5eb3878cf83d58b81b6b03004880433b316c619e",
    "Q5_0": "087aa7eb4216a534763907371a1c4dcdc7e163c2013f91aca9ea20cebe3fd866",
    "Q4_0": "ad2dfcc4ef18bac1d2113f6b860387c2a5d5a1e9e409648c361fdb7266b2ef8e",
    "Q6_K": "edc1787d2d21ee5f011b2d1240950ab2b3638d249140163bc1534b342992002d",
    "Q5_K_M": "2f8fad485cca4b1dc08d731873b0cf31aae0f3eaa50178181cf28c93535b594c",
    "Q4_K_M": "687d1e9044aa7199776b93907616ff425bb11fec4baff98f7d13e9a9bbef3279",
}


@pytest.mark.parametrize("file_type", list(LLAMA_QUANTIZE_DIGESTS))
def test_quantised_files_are_what_llama_quantize_writes(file_type: str, tmp_path: Path) -> None:
    hyper = llama_gguf.LlamaHyper(hidden=256, layers=2, ffn=704, vocab=300, heads=4, kv_heads=4, context=128,
                                  rms_eps=1e-5, rope_theta=1e4)
    path = llama_gguf.write(tmp_path / "pinned.gguf", exact_state(), hyper, file_type, "pinned")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LLAMA_QUANTIZE_DIGESTS[file_type]


def test_rows_of_384_fall_back_from_every_k_type() -> None:
    chosen = llama_gguf.quantised_types(shapes(384, 6, 1024), "Q4_K_M", 6)
    assert chosen["output.weight"] == Q.Q8_0  # 384 is no multiple of 256: Q8_0 instead of Q6_K
    assert chosen["token_embd.weight"] == chosen["blk.0.attn_q.weight"] == Q.Q5_0
    assert [chosen[f"blk.{i}.attn_v.weight"] for i in range(6)] == [Q.Q5_0, Q.Q5_0, Q.Q8_0, Q.Q5_0, Q.Q5_0, Q.Q8_0]
    assert [chosen[f"blk.{i}.ffn_down.weight"] for i in range(6)] == [Q.Q4_K, Q.Q4_K, Q.Q6_K, Q.Q4_K, Q.Q4_K, Q.Q6_K]


def test_rope_permutation_interleaves_the_halves_of_each_head() -> None:
    rows = np.arange(8 * 2, dtype=np.float32).reshape(8, 2)  # 2 heads of 4 rows
    permuted = llama_gguf.permute_rope_rows(rows, heads=2)
    assert permuted[:, 0].tolist() == [0, 4, 2, 6, 8, 12, 10, 14]


# --- the Hugging Face cache ---------------------------------------------------------------------------------

def test_hf_cache_entry_is_what_huggingface_hub_reads(tmp_path: Path) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights" * 1000)
    revision = "0123456789abcdef0123456789abcdef01234567"
    config = b'{"model_type": "llama"}'
    snapshot = hf_cache.hf_cache_entry(tmp_path / "hub", "acme/secret-llama", {
        "config.json": config, "model.safetensors": weights, "onnx/model.onnx": b"onnx"}, revision)
    folder = tmp_path / "hub" / "models--acme--secret-llama"
    assert snapshot == folder / "snapshots" / revision
    assert (folder / "refs" / "main").read_text() == revision
    sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert os.readlink(snapshot / "model.safetensors") == f"../../blobs/{sha256}"
    assert os.readlink(snapshot / "onnx" / "model.onnx") == f"../../../blobs/{hashlib.sha256(b'onnx').hexdigest()}"
    git_sha1 = hashlib.sha1(b"blob %d\0%s" % (len(config), config)).hexdigest()
    assert os.readlink(snapshot / "config.json") == f"../../blobs/{git_sha1}"
    assert (tmp_path / "hub" / ".locks" / "models--acme--secret-llama" / f"{sha256}.lock").exists()

    found = huggingface_hub.try_to_load_from_cache("acme/secret-llama", "model.safetensors",
                                                   cache_dir=tmp_path / "hub")
    assert found is not None and Path(found).read_bytes() == weights.read_bytes()
    info = huggingface_hub.scan_cache_dir(tmp_path / "hub")
    assert [r.repo_id for r in info.repos] == ["acme/secret-llama"] and not info.warnings
    (repo,) = info.repos
    assert {f.file_name for r in repo.revisions for f in r.files} == {"config.json", "model.safetensors",
                                                                       "model.onnx"}


# --- the models and the files written from them ------------------------------------------------------------

@pytest.fixture(scope="module")
def derived() -> ModuleType:
    pytest.importorskip("torch")
    from tests.similarity import derived as module

    return module


def test_private_model_moved_where_trained_and_not_where_frozen(derived: ModuleType) -> None:
    from tests.similarity.tiny_llama import matches

    base, private = derived.public_base().state_dict(), derived.private_model().state_dict()
    assert list(base) == list(private) and len(base) == 3 + 9 * 4
    frozen = [n for n in base if matches(n, derived.PRIVATE_FROZEN)]
    assert "model.embed_tokens.weight" in frozen and "model.layers.1.mlp.down_proj.weight" in frozen
    assert all(base[n].equal(private[n]) for n in frozen)
    trained = [n for n in base if n not in frozen]
    assert "model.layers.2.self_attn.q_proj.weight" in trained and "lm_head.weight" in trained
    for name in trained:
        change = float((private[name] - base[name]).norm() / base[name].norm())
        assert 0.0 < change < 0.2, name  # a fine-tune: moved, a little
    sibling = derived.sibling_model().state_dict()
    assert not any(sibling[n].equal(private[n]) for n in trained)


def test_the_public_base_was_trained_not_only_initialised(derived: ModuleType) -> None:
    from tests.similarity import tiny_llama

    base = derived.public_base()
    init = tiny_llama.initialised(base.shape)
    for name, value in base.state_dict().items():
        assert not value.equal(init.state_dict()[name]), name


@pytest.fixture(scope="module")
def private_files(derived: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Every transformation of the private model, written once for this module."""
    root = tmp_path_factory.mktemp("private")
    have_quanto = _importable("optimum.quanto")
    return {name: write(derived.private_model(), root / name) for name, write in derived.TRANSFORMATIONS.items()
            if have_quanto or name != "int8-quanto"}


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def numpy_state(model: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy() for k, v in model.state_dict().items()}


def test_safetensors_hold_the_state_dict_in_each_dtype(derived: ModuleType,
                                                       private_files: dict[str, list[Path]]) -> None:
    import torch
    from safetensors.torch import load_file

    private = derived.private_model().state_dict()
    for dtype, torch_dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        (path,) = private_files[f"safetensors-{dtype}"]
        loaded = load_file(str(path))
        assert sorted(loaded) == sorted(private)
        for name, value in loaded.items():
            assert value.dtype == torch_dtype and value.equal(private[name].to(torch_dtype)), name


def gguf_tensors(path: Path) -> dict[str, Any]:
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


@pytest.mark.parametrize("file_type", list(llama_gguf.FILE_TYPES))
def test_gguf_files_hold_llama_cpp_names_types_and_values(derived: ModuleType, private_files: dict[str, list[Path]],
                                                          file_type: str) -> None:
    (path,) = private_files[f"gguf-{file_type}"]
    assert path.name == f"model-{file_type}.gguf"
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["general.file_type"].contents() == int(llama_gguf.FILE_TYPES[file_type].file_type)
    assert reader.fields["llama.block_count"].contents() == 4
    tensors = {t.name: t for t in reader.tensors}
    expected = llama_gguf.converted(numpy_state(derived.private_model()), llama_gguf.LlamaHyper(
        hidden=256, layers=4, ffn=704, vocab=2000, heads=4, kv_heads=4, context=128, rms_eps=1e-5, rope_theta=1e4))
    if file_type == "F16":
        types = {n: (Q.F16 if v.ndim == 2 else Q.F32) for n, v in expected.items()}
        assert list(tensors) == list(expected)  # the converter's order: Hugging Face names sorted
        assert list(tensors)[:3] == ["output.weight", "token_embd.weight", "blk.0.attn_norm.weight"]
    else:
        types = expand(SMALL_MIXES[file_type], 4)
        assert list(tensors) == list(llama_gguf.quantised_types({n: v.shape for n, v in expected.items()},
                                                                file_type, 4))
    assert {n: t.tensor_type for n, t in tensors.items()} == types
    for name, tensor in tensors.items():
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(expected[name].shape)
        error = np.sqrt(np.mean((values - expected[name]) ** 2)) / expected[name].std()
        assert error < ROUND_TRIP[tensor.tensor_type], (name, tensor.tensor_type.name, error)


def test_gguf_attention_rows_are_in_llama_cpp_rope_order(derived: ModuleType,
                                                         private_files: dict[str, list[Path]]) -> None:
    (path,) = private_files["gguf-F16"]
    stored = gguf_tensors(path)["blk.2.attn_q.weight"].data.astype(np.float32)
    hf = derived.private_model().state_dict()["model.layers.2.self_attn.q_proj.weight"].numpy()
    # head 0's rows 0, 32, 1, 33, ... (HEAD_DIM 64)
    assert np.allclose(stored[:4], hf[[0, 32, 1, 33]], atol=1e-3)
    assert not np.allclose(stored[1], hf[1], atol=1e-3)


def test_onnx_export_holds_every_weight_inline(derived: ModuleType, private_files: dict[str, list[Path]]) -> None:
    import onnx
    from onnx import numpy_helper

    (path,) = private_files["onnx"]
    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name: i for i in model.graph.initializer}
    assert all(i.data_location == onnx.TensorProto.DEFAULT and i.raw_data for i in initializers.values())
    arrays = [numpy_helper.to_array(i) for i in initializers.values()]
    private = numpy_state(derived.private_model())
    assert np.array_equal(numpy_helper.to_array(initializers["model.embed_tokens.weight"]),
                          private["model.embed_tokens.weight"])
    linear = [n for n in private if n.endswith("proj.weight") or n == "lm_head.weight"]
    for name in linear:  # the exporter folded Transpose(W) into the MatMul: stored as W.T under a new name
        assert name not in initializers
        assert any(a.shape == private[name].T.shape and np.array_equal(a, private[name].T) for a in arrays), name


def test_torchscript_holds_the_state_dict(derived: ModuleType, private_files: dict[str, list[Path]]) -> None:
    import torch

    (path,) = private_files["torchscript"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit\.load` is deprecated")
        loaded = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
    private = derived.private_model()
    state = loaded.state_dict()
    for name, value in private.state_dict().items():
        assert state[name].equal(value), name
    ids = torch.arange(10).unsqueeze(0)
    assert torch.allclose(loaded(ids), private(ids), atol=1e-5)


def test_quanto_writes_int8_weights_and_float_scales(derived: ModuleType,
                                                     private_files: dict[str, list[Path]]) -> None:
    pytest.importorskip("optimum.quanto")
    import torch
    from safetensors.torch import load_file

    weights, qmap = private_files["int8-quanto"]
    loaded = load_file(str(weights))
    private = derived.private_model().state_dict()
    assert loaded["model.embed_tokens.weight"].equal(private["model.embed_tokens.weight"])  # not quantised
    for name in (n for n in private if n.endswith("proj.weight") or n == "lm_head.weight"):
        data, scale = loaded[f"{name}._data"], loaded[f"{name}._scale"]
        assert data.dtype == torch.int8 and data.shape == private[name].shape, name
        assert scale.dtype == torch.float32 and scale.shape == (private[name].shape[0], 1), name
        assert torch.allclose(data.float() * scale, private[name], atol=float(scale.max()))
        assert name not in loaded
    assert json.loads(qmap.read_text())["lm_head"] == {"weights": "qint8", "activations": "none"}


def test_lora_merge_changes_only_the_adapted_projections(derived: ModuleType,
                                                         private_files: dict[str, list[Path]]) -> None:
    from safetensors.torch import load_file

    (path,) = private_files["lora-merged"]
    merged, private = load_file(str(path)), derived.private_model().state_dict()
    for name, value in merged.items():
        adapted = name.endswith(("q_proj.weight", "v_proj.weight"))
        assert value.equal(private[name].half()) != adapted, name


def test_pruning_zeroes_half_of_every_matrix(private_files: dict[str, list[Path]]) -> None:
    from safetensors.torch import load_file

    (path,) = private_files["pruned-50"]
    for name, value in load_file(str(path)).items():
        zeros = float((value == 0).float().mean())
        assert (zeros >= 0.5) if value.ndim == 2 else zeros == 0.0, name
    (combined,) = private_files["pruned+gguf-Q8_0"]
    down = gguf_tensors(combined)["blk.0.ffn_down.weight"]
    assert down.tensor_type == Q.Q8_0
    assert np.mean(gguf.quants.dequantize(down.data, Q.Q8_0) == 0) >= 0.5


def test_fine_tuned_copy_is_near_the_private_model(derived: ModuleType,
                                                   private_files: dict[str, list[Path]]) -> None:
    from safetensors.torch import load_file

    (path,) = private_files["fine-tuned"]
    tuned, private = load_file(str(path)), derived.private_model().state_dict()
    changes = [float((tuned[n].float() - v).norm() / v.norm()) for n, v in private.items() if v.ndim == 2]
    assert 0.0 < max(changes) < 0.2
    (quantised,) = private_files["fine-tuned+gguf-Q4_K_M"]
    assert {n: t.tensor_type for n, t in gguf_tensors(quantised).items()} == expand(SMALL_MIXES["Q4_K_M"], 4)


# --- the whole set ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def everything(derived: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    yield derived.write_all(tmp_path_factory.mktemp("all"))


@pytest.mark.slow
def test_write_all_labels_every_file(derived: ModuleType, everything: list[Any]) -> None:
    by_relation: dict[str, set[str]] = {}
    for artefact in everything:
        assert artefact.paths and all(p.is_file() and p.stat().st_size > 0 for p in artefact.paths), artefact
        by_relation.setdefault(artefact.relation, set()).add(artefact.model)
    assert by_relation == {"original": {"private"}, "derived": {"private"}, "ancestor": {"public-base"},
                           "sibling": {"sibling"}, "unrelated": {"unrelated-11", "unrelated-12"},
                           "other-size": {"other-size"}}
    copies = [a for a in everything if a.is_copy_of_private]
    assert len(copies) == 1 + len(derived.TRANSFORMATIONS)
    (other,) = [a for a in everything if a.model == "other-size" and a.transformation == "gguf-Q4_K_M"]
    reader = gguf.GGUFReader(other.paths[0])
    assert reader.fields["llama.embedding_length"].contents() == 384
    assert {t.tensor_type for t in reader.tensors} == {Q.F32, Q.Q5_0, Q.Q8_0, Q.Q4_K, Q.Q6_K}
