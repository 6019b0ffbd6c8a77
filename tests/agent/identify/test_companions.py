"""companion_paths(): the files a model file names, exactly those identify_companion() reports as part of it,
so that a companion examined before its model file can be examined again once the model file is there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.agent.identify import model_dirs
from weightwarden.agent.identify import Identification, Identifier
from weightwarden.agent.identify.companions import companion_paths, primary_path


def _openvino(folder: Path) -> Path:
    return model_dirs.openvino_pair(folder)[0]


def _paddle(folder: Path) -> Path:
    return model_dirs.paddle_pair(folder)[0]


def _tf_checkpoint(folder: Path) -> Path:
    model_dirs.tensor_bundle(folder / "ckpt-7", {"a": model_dirs.WEIGHTS, "b": np.ones(4), "c": np.zeros(2)},
                             shards=3)
    return folder / "ckpt-7.index"


def _mlpackage(folder: Path) -> Path:
    return model_dirs.mlpackage(folder / "tiny.mlpackage") / "Manifest.json"


def _onnx_one_file(folder: Path) -> Path:
    return model_dirs.onnx_with_external_data(folder)


def _onnx_per_tensor(folder: Path) -> Path:
    return model_dirs.onnx_with_external_data(folder, one_file=False)


# (id, writer of the model file and its companions, names of the companions when they are fixed)
PRIMARIES: list[tuple[str, Callable[[Path], Path], list[str] | None]] = [
    ("openvino", _openvino, ["model.bin"]), ("paddle", _paddle, ["inference.pdiparams"]),
    ("tf-checkpoint", _tf_checkpoint, [f"ckpt-7.data-0000{k}-of-00003" for k in range(3)]),
    ("mlpackage", _mlpackage, None), ("onnx-one-file", _onnx_one_file, ["model.onnx.data"]),
    ("onnx-per-tensor", _onnx_per_tensor, ["linear_bias", "linear_weight"])]


def identify(identifier: Identifier, path: Path) -> Identification:
    found = identifier.identify_path(str(path))
    assert found is not None and found.confirmed, path
    return found


@pytest.mark.parametrize(("write", "names"), [p[1:] for p in PRIMARIES], ids=[p[0] for p in PRIMARIES])
def test_a_model_file_lists_the_companions_that_are_identified_through_it(
        identifier: Identifier, tmp_path: Path, write: Callable[[Path], Path], names: list[str] | None) -> None:
    primary = write(tmp_path / "model")
    found = identify(identifier, primary)
    listed = companion_paths(str(primary), found)

    assert listed and len(set(listed)) == len(listed) and str(primary) not in listed
    if names is not None:
        assert [Path(p).name for p in listed] == names
    for companion in listed:
        part = identify(identifier, Path(companion))
        assert part.format == found.format
        # Each one stands for the model file (an .mlpackage's model spec is also a model by its content).
        assert "part_of" in part.details or part.details.get("role") is None, (companion, part.details)
        assert primary_path(companion, part) in (str(primary), None)  # and leads back to it
    assert primary_path(str(primary), found) is None


def test_missing_companions_are_not_listed_and_companions_name_none(identifier: Identifier, tmp_path: Path) -> None:
    onnx = model_dirs.onnx_with_external_data(tmp_path / "onnx", one_file=False)
    found = identify(identifier, onnx)
    (onnx.parent / "linear_bias").unlink()
    xml, weights = model_dirs.openvino_pair(tmp_path / "ir")
    xml_found = identify(identifier, xml)
    weights_found = identify(identifier, weights)
    weights.unlink()

    assert [Path(p).name for p in companion_paths(str(onnx), found)] == ["linear_weight"]
    assert companion_paths(str(xml), xml_found) == []
    assert companion_paths(str(weights), weights_found) == []  # a companion is no model file of its own


def test_a_weights_folder_is_listed_file_by_file_without_following_links(identifier: Identifier,
                                                                          tmp_path: Path) -> None:
    manifest = _mlpackage(tmp_path)
    weights = manifest.parent / "Data" / "com.apple.CoreML" / "weights"
    (weights / "deeper").mkdir()
    (weights / "deeper" / "more.bin").write_bytes(model_dirs.WEIGHTS.tobytes())
    (weights / "outside").symlink_to(tmp_path)

    names = sorted(Path(p).relative_to(manifest.parent).as_posix()
                   for p in companion_paths(str(manifest), identify(identifier, manifest)))

    assert names == ["Data/com.apple.CoreML/model.mlmodel", "Data/com.apple.CoreML/weights/deeper/more.bin",
                     "Data/com.apple.CoreML/weights/weight.bin"]
