"""Formats that are folders or file pairs, and the msgpack/protobuf formats without magic: TensorFlow
SavedModel and checkpoints, CoreML .mlpackage, OpenVINO IR + weights, Paddle, ONNX external data, Flax.

Content identifies the files that have content to go by (renamed too); files of raw tensors are models only
through the file that names them; look-alikes (a LevelDB table, plain msgpack, a random protobuf, a lone
manifest, a .bin beside a non-IR xml) are not models.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agent.identify import model_dirs
from weightwarden.agent.identify import Identification, Identifier


def identify(identifier: Identifier, path: Path) -> Identification | None:
    found = identifier.identify_path(str(path))
    if found is not None:
        json.dumps(found.details)  # details travel in events
    return found


def expect(found: Identification | None, format_id: str, **details: Any) -> None:
    assert found is not None and (found.format, found.confirmed) == (format_id, True)
    assert {key: found.details.get(key) for key in details} == details


# ---------------------------------------------------------------- content formats, renamed


CONTENT_CASES: list[tuple[Callable[[Path], None], str, dict[str, Any]]] = [
    (model_dirs.saved_model_pb, "tf-savedmodel", {"role": "saved-model", "tags": ["serve"],
                                                  "tensorflow_version": "2.16.1"}),
    (model_dirs.flax_msgpack, "flax-msgpack", {"arrays_seen": 2, "scalars_seen": 1, "dtypes": ["float32", "int64"]}),
    (lambda p: model_dirs.flax_msgpack(p, chunked=True), "flax-msgpack", {"chunked_arrays": 1}),
    (model_dirs.paddle_pdmodel, "paddle", {"role": "program", "op_types": ["feed", "matmul_v2", "fetch"]}),
    (model_dirs.paddle_pdparams, "paddle", {"role": "state-dict", "protocol": 4}),
]


@pytest.mark.parametrize("name", ["saved_model.pb", "weights.bin", "notes.txt", "model"])
@pytest.mark.parametrize("case", CONTENT_CASES, ids=["saved_model_pb", "flax", "flax_chunked", "pdmodel",
                                                     "pdparams"])
def test_content_formats_are_found_whatever_their_name(identifier: Identifier, tmp_path: Path, name: str,
                                                        case: tuple[Callable[[Path], None], str, dict[str, Any]]
                                                        ) -> None:
    build, format_id, details = case
    build(tmp_path / name)

    expect(identify(identifier, tmp_path / name), format_id, **details)


# ---------------------------------------------------------------- TensorFlow


def test_saved_model_directory_every_part_is_identified(identifier: Identifier, tmp_path: Path) -> None:
    root = model_dirs.saved_model_dir(tmp_path / "resnet" / "1")

    expect(identify(identifier, root / "saved_model.pb"), "tf-savedmodel", role="saved-model")
    expect(identify(identifier, root / "variables" / "variables.index"), "tf-savedmodel",
           role="variables-index", num_shards=1, data_shards=1, in_saved_model=True, bundle_version=1)
    expect(identify(identifier, root / "variables" / "variables.data-00000-of-00001"), "tf-savedmodel",
           role="variables-data", part_of="variables.index", shard=0, shard_count=1)


def test_checkpoint_index_is_confirmed_by_its_data_shards(identifier: Identifier, tmp_path: Path) -> None:
    model_dirs.tensor_bundle(tmp_path / "ckpt-7", {"a": model_dirs.WEIGHTS, "b": model_dirs.WEIGHTS * 2}, shards=2)

    expect(identify(identifier, tmp_path / "ckpt-7.index"), "tf-savedmodel", num_shards=2, data_shards=2,
           in_saved_model=False)
    expect(identify(identifier, tmp_path / "ckpt-7.data-00001-of-00002"), "tf-savedmodel", shard=1, shard_count=2)


def test_bundle_index_without_siblings_is_not_a_model(identifier: Identifier, tmp_path: Path) -> None:
    # The table footer is LevelDB's: alone, a .index could be any LevelDB-format table.
    model_dirs.tensor_bundle(tmp_path / "src" / "variables", {"a": model_dirs.WEIGHTS})
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(tmp_path / "src" / "variables.index", lone / "variables.index")

    assert identify(identifier, lone / "variables.index") is None
    # Without a path nothing beside the file can confirm it.
    with (lone / "variables.index").open("rb") as handle:
        assert identifier.identify_fd(handle.fileno(), (lone / "variables.index").stat().st_size) is None


def test_data_shard_with_a_wrong_count_or_no_index_is_not_a_model(identifier: Identifier, tmp_path: Path) -> None:
    model_dirs.tensor_bundle(tmp_path / "ckpt", {"a": model_dirs.WEIGHTS})
    stray = tmp_path / "ckpt.data-00000-of-00003"
    stray.write_bytes(model_dirs.WEIGHTS.tobytes())
    orphan = tmp_path / "other.data-00000-of-00001"
    orphan.write_bytes(model_dirs.WEIGHTS.tobytes())

    assert identify(identifier, stray) is None
    assert identify(identifier, orphan) is None


def test_leveldb_table_with_the_same_footer_is_not_a_model(identifier: Identifier, tmp_path: Path) -> None:
    leveldb = tmp_path / "db"
    leveldb.mkdir()
    model_dirs.leveldb_like(leveldb / "000005.ldb")
    model_dirs.leveldb_like(leveldb / "variables.index")  # named like a bundle, with a shard beside it
    (leveldb / "variables.data-00000-of-00001").write_bytes(b"\x00" * 64)

    assert identify(identifier, leveldb / "000005.ldb") is None
    assert identify(identifier, leveldb / "variables.index") is None
    assert identify(identifier, leveldb / "variables.data-00000-of-00001") is None


def test_random_protobuf_is_no_model(identifier: Identifier, tmp_path: Path) -> None:
    model_dirs.random_protobuf(tmp_path / "saved_model.pb")

    assert identify(identifier, tmp_path / "saved_model.pb") is None


# ---------------------------------------------------------------- Flax


@pytest.mark.parametrize("build", [model_dirs.msgpack_plain_data, model_dirs.msgpack_with_bad_ndarray])
def test_msgpack_without_flax_arrays_is_not_a_model(identifier: Identifier, tmp_path: Path,
                                                     build: Callable[[Path], None]) -> None:
    build(tmp_path / "flax_model.msgpack")

    assert identify(identifier, tmp_path / "flax_model.msgpack") is None


def test_truncated_flax_checkpoint_is_not_a_model(identifier: Identifier, tmp_path: Path) -> None:
    path = tmp_path / "flax_model.msgpack"
    model_dirs.flax_msgpack(path)
    path.write_bytes(path.read_bytes()[:-10])

    assert identify(identifier, path) is None


# ---------------------------------------------------------------- Paddle


def test_paddle_pair_program_and_parameters(identifier: Identifier, tmp_path: Path) -> None:
    program, parameters = model_dirs.paddle_pair(tmp_path / "ocr")

    expect(identify(identifier, program), "paddle", role="program", variables_seen=5)
    expect(identify(identifier, parameters), "paddle", role="parameters", part_of="inference.pdmodel")


def test_pdiparams_without_a_real_program_is_not_a_model(identifier: Identifier, tmp_path: Path) -> None:
    model_dirs.paddle_pdiparams(tmp_path / "inference.pdiparams")
    assert identify(identifier, tmp_path / "inference.pdiparams") is None

    model_dirs.random_protobuf(tmp_path / "inference.pdmodel")
    assert identify(identifier, tmp_path / "inference.pdiparams") is None


def test_pickle_with_the_paddle_key_but_no_arrays_is_not_a_model(identifier: Identifier, tmp_path: Path) -> None:
    model_dirs.pickle_with_paddle_key_but_plain_data(tmp_path / "model.pdparams")

    assert identify(identifier, tmp_path / "model.pdparams") is None


# ---------------------------------------------------------------- OpenVINO


def test_openvino_weights_are_a_model_through_their_xml(identifier: Identifier, tmp_path: Path) -> None:
    xml, weights = model_dirs.openvino_pair(tmp_path / "ir")

    expect(identify(identifier, xml), "openvino-ir", name="tiny-linear")
    expect(identify(identifier, weights), "openvino-ir", role="weights", part_of="model.xml", name="tiny-linear")

    xml.unlink()
    assert identify(identifier, weights) is None  # raw floats on their own say nothing


def test_bin_beside_a_non_ir_xml_is_not_a_model(identifier: Identifier, tmp_path: Path) -> None:
    (tmp_path / "layout.xml").write_text("<?xml version='1.0'?><svg><net name='x' version='1'/></svg>")
    (tmp_path / "layout.bin").write_bytes(model_dirs.WEIGHTS.tobytes())

    assert identify(identifier, tmp_path / "layout.bin") is None


# ---------------------------------------------------------------- ONNX external data (written by onnx)


@pytest.mark.parametrize("one_file", [True, False], ids=["one-file", "file-per-tensor"])
def test_onnx_external_data_files_belong_to_the_model(identifier: Identifier, tmp_path: Path,
                                                       one_file: bool) -> None:
    model = model_dirs.onnx_with_external_data(tmp_path / "onnx", one_file=one_file)
    data_files = sorted(p for p in model.parent.iterdir() if p != model)

    expect(identify(identifier, model), "onnx", producer_name="weightwarden-tests")
    assert data_files
    for data in data_files:
        expect(identify(identifier, data), "onnx", role="external-data", part_of="model.onnx")


def test_files_the_onnx_graph_does_not_name_are_not_models(identifier: Identifier, tmp_path: Path) -> None:
    model = model_dirs.onnx_with_external_data(tmp_path / "onnx")
    unrelated = model.parent / "model.onnx.data.bak"
    unrelated.write_bytes(b"\x00" * 128)

    assert identify(identifier, unrelated) is None


# ---------------------------------------------------------------- CoreML .mlpackage


def test_mlpackage_manifest_spec_and_weights(identifier: Identifier, tmp_path: Path) -> None:
    root = model_dirs.mlpackage(tmp_path / "Classifier.mlpackage")
    data = root / "Data" / "com.apple.CoreML"

    expect(identify(identifier, root / "Manifest.json"), "coreml", role="mlpackage-manifest",
           root_model_path="com.apple.CoreML/model.mlmodel")
    expect(identify(identifier, data / "model.mlmodel"), "coreml", specification_version=8, model_type_field=502)
    expect(identify(identifier, data / "weights" / "weight.bin"), "coreml", role="mlpackage-item",
           part_of="../../../Manifest.json")


def test_manifest_without_its_root_model_is_not_a_model(identifier: Identifier, tmp_path: Path) -> None:
    root = model_dirs.mlpackage(tmp_path / "Classifier.mlpackage")
    (root / "Data" / "com.apple.CoreML" / "model.mlmodel").unlink()
    copied = tmp_path / "Manifest.json"
    shutil.copy(root / "Manifest.json", copied)

    assert identify(identifier, root / "Manifest.json") is None
    assert identify(identifier, copied) is None
    # Its weights are then no model either: the package they belong to is not one.
    assert identify(identifier, root / "Data" / "com.apple.CoreML" / "weights" / "weight.bin") is None


def test_manifest_item_paths_cannot_escape_the_package(identifier: Identifier, tmp_path: Path) -> None:
    root = model_dirs.mlpackage(tmp_path / "Evil.mlpackage")
    manifest = json.loads((root / "Manifest.json").read_text())
    manifest["itemInfoEntries"][model_dirs.ROOT_ID]["path"] = "../../etc/passwd"
    (root / "Manifest.json").write_text(json.dumps(manifest))

    assert identify(identifier, root / "Manifest.json") is None


def test_torchscript_is_reported_apart_from_plain_torch_checkpoints(identifier: Identifier, tmp_path: Path) -> None:
    from tests.agent.identify import builders

    builders.torchscript(tmp_path / "scripted.pt")
    builders.pytorch_zip(tmp_path / "plain.pt")

    expect(identify(identifier, tmp_path / "scripted.pt"), "torchscript", torchscript=True)
    expect(identify(identifier, tmp_path / "plain.pt"), "pytorch-zip", torchscript=False)


def test_mobile_torchscript_is_torchscript(identifier: Identifier, tmp_path: Path) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(torch.nn.Linear(2, 2))._save_for_lite_interpreter(str(tmp_path / "model.ptl"))

    expect(identify(identifier, tmp_path / "model.ptl"), "torchscript", torchscript=True)


def test_a_fifo_or_symlink_in_the_model_files_place_is_never_opened(identifier: Identifier, tmp_path: Path) -> None:
    import os

    xml, weights = model_dirs.openvino_pair(tmp_path / "real")
    fifo_side = tmp_path / "fifo"
    fifo_side.mkdir()
    os.mkfifo(fifo_side / "model.xml")  # opening it for reading would block forever
    shutil.copy(weights, fifo_side / "model.bin")
    link_side = tmp_path / "link"
    link_side.mkdir()
    (link_side / "model.xml").symlink_to(xml)
    shutil.copy(weights, link_side / "model.bin")

    assert identify(identifier, fifo_side / "model.bin") is None
    assert identify(identifier, link_side / "model.bin") is None
