"""ONNX initializers are sampled where torch.onnx.export puts them: inline, or in the external data file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.fingerprint.layouts import onnx_layout, plan_tensors
from weightwarden.agent.fingerprint.layouts.budget import OverBudget
from weightwarden.agent.fingerprint.tensors import fingerprint_array
from weightwarden.agent.identify import Identifier
from weightwarden.agent.scanner import Scanner

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")


def network() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 48))


def export(path: Path, **options: object) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network(), (torch.zeros(1, 64),), str(path), **options)
    return path


def corners_of(scanner: Scanner, folder: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name in sorted(os.listdir(folder)):
        examined = scanner.examine(str(folder / name))
        found.update({t.name: t.block for t in getattr(examined, "tensors", ()) if t.block})
    return found


@pytest.fixture
def scanner() -> Scanner:
    return Scanner(Identifier(), FingerprintCache())


def expected_corners() -> dict[str, bytes]:
    weights = network().state_dict()
    return {name: fingerprint_array(weights[name].numpy()).block for name in ("0.weight", "2.weight")}


def test_the_default_exporter_keeps_weights_in_external_data_and_they_are_sampled_there(
        tmp_path: Path, scanner: Scanner) -> None:
    pytest.importorskip("onnxscript")
    export(tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx.data").exists()  # torch's default: weights beside the graph
    found = corners_of(scanner, tmp_path)
    expected = expected_corners()
    # The exporter may store a Linear weight as it is or transposed (a MatMul initializer).
    for name, block in expected.items():
        match = [b for b in found.values() if b == block]
        transposed = fingerprint_array(network().state_dict()[name].numpy().T.copy()).block
        assert match or transposed in found.values(), f"{name} not sampled from the ONNX export"


def test_the_legacy_exporter_keeps_weights_inline(tmp_path: Path, scanner: Scanner) -> None:
    export(tmp_path / "model.onnx", dynamo=False)
    assert os.listdir(tmp_path) == ["model.onnx"]
    found = corners_of(scanner, tmp_path)
    assert set(expected_corners().values()) <= set(found.values())


def test_onnx_written_by_the_onnx_library_with_float_data_and_external_data(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import convert_model_to_external_data

    rng = np.random.default_rng(4)
    inline = numpy_helper.from_array(rng.standard_normal((40, 50)).astype(np.float32), "inline")
    packed = helper.make_tensor("packed", TensorProto.FLOAT, [33, 34], rng.standard_normal(33 * 34).tolist())
    half = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float16), "half")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [inline, packed, half])
    model = helper.make_model(graph)
    onnx.save(model, str(tmp_path / "inline.onnx"))
    fd = os.open(tmp_path / "inline.onnx", os.O_RDONLY)
    try:
        spans = {s.name: s for s in plan_tensors(fd, os.fstat(fd).st_size, "onnx").spans}
    finally:
        os.close(fd)
    assert {n: (s.shape, s.encoding) for n, s in spans.items()} == {
        "inline": ((40, 50), "<f4"), "packed": ((33, 34), "<f4"), "half": ((64, 64), "<f2")}
    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    onnx.save(model, str(tmp_path / "external.onnx"))
    fd = os.open(tmp_path / "external.onnx", os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        # onnx moves only raw_data tensors out; float_data stays in the graph.
        assert [s.name for s in onnx_layout.spans(fd, size)] == ["packed"]
        external = {s.name for s in onnx_layout.external_spans(fd, size, "weights.bin")}
        assert external == {"inline", "half"}
        assert onnx_layout.external_spans(fd, size, "other.bin") == []
    finally:
        os.close(fd)


@pytest.mark.parametrize("damage", ["truncate", "lying-length", "garbage"])
def test_a_damaged_onnx_file_gives_fewer_spans_never_an_error(tmp_path: Path, damage: str) -> None:
    path = export(tmp_path / "model.onnx", dynamo=False)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "lying-length":
        data[1:6] = b"\xff\xff\xff\xff\x0f"
    else:
        data[40:] = os.urandom(len(data) - 40)
    path.write_bytes(bytes(data))
    fd = os.open(path, os.O_RDONLY)
    try:
        plan = plan_tensors(fd, len(data), "onnx")
    finally:
        os.close(fd)
    assert all(s.offset + s.nbytes <= len(data) for s in plan.spans)


def test_a_graph_of_too_many_fields_is_over_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = export(tmp_path / "model.onnx", dynamo=False)
    monkeypatch.setattr(onnx_layout, "MAX_FIELDS", 5)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OverBudget):
            onnx_layout.spans(fd, os.fstat(fd).st_size)
        assert plan_tensors(fd, os.fstat(fd).st_size, "onnx").skipped is not None
    finally:
        os.close(fd)
