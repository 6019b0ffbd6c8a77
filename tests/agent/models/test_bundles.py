"""Folder and file-pair models are one logical model each: a SavedModel directory, an .mlpackage, an OpenVINO
xml + bin, a Paddle .pdmodel + .pdiparams, an ONNX model with its external data (written by onnx), and a
TensorFlow checkpoint's index + shards; `weightwarden models --json` shows each with its file count and size."""

from __future__ import annotations

import os
from pathlib import Path

from tests.agent.cli.helpers import json_lines, run_cli
from tests.agent.identify import model_dirs
from weightwarden.agent.events import ModelFile
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.models import catalog
from weightwarden.agent.scanner import Scanner


def build_tree(root: Path) -> dict[str, list[Path]]:
    """Every bundle kind, with the files each logical model must hold."""
    saved_model = model_dirs.saved_model_dir(root / "serving" / "resnet" / "3")
    xml, weights = model_dirs.openvino_pair(root / "ir", stem="detector", net_name="face-detector")
    program, parameters = model_dirs.paddle_pair(root / "paddle" / "ocr", stem="inference")
    model_dirs.onnx_with_external_data(root / "onnx" / "encoder", one_file=False)
    package = model_dirs.mlpackage(root / "apps" / "Classifier.mlpackage")
    model_dirs.tensor_bundle(root / "checkpoints" / "ckpt-12", {"w": model_dirs.WEIGHTS, "v": model_dirs.WEIGHTS},
                             shards=2)
    return {
        "resnet/3": [saved_model / "saved_model.pb", *sorted((saved_model / "variables").iterdir())],
        "face-detector": [xml, weights],
        "inference": [program, parameters],
        "encoder": sorted((root / "onnx" / "encoder").iterdir()),
        "Classifier": [package / "Manifest.json", *sorted(p for p in (package / "Data").rglob("*") if p.is_file())],
        "ckpt-12": sorted((root / "checkpoints").iterdir()),
    }


def test_bundles_are_one_logical_model_each(tmp_path: Path) -> None:
    expected = build_tree(tmp_path / "tree")
    scanner = Scanner(Identifier(), FingerprintCache(), workers=2)

    files = [m for m in scanner.scan([str(tmp_path / "tree")]) if isinstance(m, ModelFile)]
    models = {model.name: model for model in catalog(files)}

    assert set(models) == set(expected)
    for name, paths in expected.items():
        model = models[name]
        assert sorted(model.paths) == sorted(str(p) for p in paths), name
        assert (model.files, model.size) == (len(paths), sum(p.stat().st_size for p in paths)), name
    assert {name: models[name].kind for name in expected} == {
        "resnet/3": "savedmodel", "face-detector": "openvino", "inference": "paddle",
        "encoder": "onnx-external-data", "Classifier": "mlpackage", "ckpt-12": "file"}
    assert models["encoder"].formats == ["onnx"] and models["resnet/3"].formats == ["tf-savedmodel"]


def test_models_command_shows_bundles_with_file_count_and_size(tmp_path: Path) -> None:
    expected = build_tree(tmp_path / "tree")
    env = {"WEIGHTWARDEN_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("scan", str(tmp_path / "tree"), "--json", "--mode", "user", env=env).returncode == 0

    result = run_cli("models", "--json", "--mode", "user", env=env)

    assert result.returncode == 0, result.stderr
    shown = {m["name"]: m for m in json_lines(result.stdout)}
    assert {name: (shown[name]["files"], shown[name]["size"]) for name in expected} == {
        name: (len(paths), sum(os.path.getsize(p) for p in paths)) for name, paths in expected.items()}
