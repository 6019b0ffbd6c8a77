"""Our K-quant quantisers and mix rules against what llama.cpp's llama-quantize wrote (tests/data/kquants)."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest

from tests.similarity import kquants
from tests.similarity.kquants_golden import (
    LLAMA_CPP_COMMIT,
    RUNS,
    Golden,
    Run,
    golden_inputs,
    input_hashes,
    load_golden,
    random_inputs,
    run_llama_quantize,
    tensor_shapes,
)

K_TYPES = ("Q4_K", "Q5_K", "Q6_K")


@pytest.fixture(scope="module")
def golden() -> Golden:
    return load_golden()


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return golden_inputs()


def expected_type(run: Run, name: str) -> str:
    """The type our rules give `name` in `run`: the pure base type, Q6_K throughout, or the K_M mix."""
    if name.endswith("_norm.weight"):
        return "F32"
    if run.ftype == "Q6_K":
        return "Q6_K"
    if run.pure:
        return {"Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K"}[run.ftype]
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    variant: kquants.MixVariant = "Q4_K_M" if run.ftype == "Q4_K_M" else "Q5_K_M"
    return kquants.km_mix_type(name, layer, run.n_layers, variant, tied_embeddings=run.tied,
                               llama_70b=run.llama_70b)


def test_golden_data_names_its_commit_and_matches_the_input_recipe(golden: Golden,
                                                                  inputs: dict[str, np.ndarray]) -> None:
    assert golden.commit == LLAMA_CPP_COMMIT
    assert input_hashes(inputs) == golden.hashes, "golden_inputs() no longer rebuilds the stored model's input"


@pytest.mark.parametrize("type_name", K_TYPES)
def test_quantiser_writes_llama_quantize_bytes(golden: Golden, inputs: dict[str, np.ndarray],
                                               type_name: str) -> None:
    stored = [key.split("@")[0] for key in golden.data if key.endswith(f"@{type_name}")]
    assert len(stored) >= 10
    differing = [name for name in stored
                 if kquants.quantize(inputs[name], type_name).tobytes() != golden.written(name, type_name)]
    assert differing == []


@pytest.mark.parametrize("run", RUNS, ids=lambda run: run.name)
def test_type_rules_match_llama_quantize_choices(golden: Golden, run: Run) -> None:
    chosen = golden.runs[run.name]
    assert set(chosen) == {name for name in tensor_shapes(run.n_layers) if run.holds(name)}
    assert {name: expected_type(run, name) for name in chosen} == chosen


def test_mix_upgrades_the_layers_llama_quantize_upgrades(golden: Golden) -> None:
    """The stored Q4_K_M run itself (not our rules): which blocks got Q6_K attn_v and ffn_down."""
    chosen = golden.runs["Q4_K_M"]
    upgraded = sorted(int(name.split(".")[1]) for name, kind in chosen.items()
                      if name.endswith("attn_v.weight") and kind == "Q6_K")
    assert upgraded == [0, 3, 6, 9, 10, 11]
    assert chosen["output.weight"] == "Q6_K" and chosen["token_embd.weight"] == "Q4_K"


def test_use_more_bits_layers() -> None:
    assert [i for i in range(8) if kquants.use_more_bits(i, 8)] == [0, 3, 6, 7]
    assert [i for i in range(32) if kquants.use_more_bits(i, 32)] == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27,
                                                                      28, 29, 30, 31]


@pytest.mark.parametrize(("type_name", "tolerance"), [("Q4_K", 0.12), ("Q5_K", 0.06), ("Q6_K", 0.03)])
def test_dequantised_output_is_close_to_the_input(type_name: str, tolerance: float) -> None:
    values = np.random.default_rng(5).standard_normal((16, 1024)).astype(np.float32) * 0.02
    written = kquants.quantize(values, type_name)
    assert written.shape == (16, 4 * kquants.BLOCK_BYTES[type_name])
    back = gguf.quants.dequantize(written, gguf.GGMLQuantizationType[type_name])
    assert back.shape == values.shape
    relative = np.sqrt(np.mean((back - values) ** 2) / np.mean(values**2))
    assert relative < tolerance


def test_zero_and_constant_rows_round_trip_exactly() -> None:
    rows = np.stack([np.zeros(256), np.full(256, -0.375)]).astype(np.float32)
    for type_name in K_TYPES:
        back = gguf.quants.dequantize(kquants.quantize(rows, type_name), gguf.GGMLQuantizationType[type_name])
        assert np.array_equal(back[0], rows[0])
        assert np.allclose(back[1], rows[1], rtol=1e-3)


def test_any_leading_shape_and_blocks_independent_of_rows() -> None:
    values = np.random.default_rng(6).standard_normal((2, 3, 512)).astype(np.float32)
    for type_name in K_TYPES:
        whole = kquants.quantize(values, type_name)
        assert whole.shape == (2, 3, 2 * kquants.BLOCK_BYTES[type_name])
        assert whole.tobytes() == kquants.quantize(values.reshape(-1), type_name).tobytes()


def test_rejects_what_llama_quantize_cannot_write_as_a_k_quant() -> None:
    with pytest.raises(ValueError, match="multiple of 256"):
        kquants.quantize_q4_k(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="finite"):
        kquants.quantize_q6_k(np.full(256, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="no K-quant quantiser"):
        kquants.quantize(np.zeros(256, dtype=np.float32), "Q8_0")
    with pytest.raises(ValueError, match="variant"):
        kquants.km_mix_type("blk.0.attn_v.weight", 0, 8, "Q3_K_M")  # type: ignore[arg-type]


LIVE_BINARY = os.environ.get("WW_LLAMA_QUANTIZE", "")


@pytest.mark.skipif(not LIVE_BINARY, reason="set WW_LLAMA_QUANTIZE to a llama-quantize binary to run it live")
@pytest.mark.timeout(900)
def test_live_llama_quantize_agrees_on_fresh_random_data(tmp_path: Path) -> None:
    seed = int(np.random.default_rng().integers(2**32))
    rng = np.random.default_rng(seed)
    fresh: dict[int, dict[str, np.ndarray]] = {}
    for run in RUNS:
        if run.n_layers not in fresh:
            fresh[run.n_layers] = random_inputs(rng, run.n_layers)
        source = fresh[run.n_layers]
        written = run_llama_quantize(LIVE_BINARY, run, source, tmp_path)
        wrong_type = {name: tensor.type_name for name, tensor in written.items()
                      if tensor.type_name != expected_type(run, name)}
        assert wrong_type == {}, f"seed {seed}, {run.name}: llama-quantize chose otherwise"
        wrong_bytes = [name for name, tensor in written.items() if tensor.type_name in K_TYPES
                       and kquants.quantize(source[name], tensor.type_name).tobytes() != tensor.data]
        assert wrong_bytes == [], f"seed {seed}, {run.name}: bytes differ"
