"""Logical models from real layouts: Hugging Face cache, Ollama blobs + manifests, shards, adapters; known
hashes taken from blob names after a size check; and `weightwarden models --json` over a scanned tree."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from tests.agent.cli.helpers import json_lines, run_cli
from tests.agent.fingerprint import writers
from tests.conftest import write_gguf
from weightwarden.agent.events import ModelFile
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.scanner import Scanner, ScanStats

TENSORS = writers.model_tensors(seed=21, layers=2, width=32)


def scan(*roots: Path) -> tuple[dict[str, ModelFile], ScanStats]:
    stats = ScanStats()
    scanner = Scanner(Identifier(), FingerprintCache(), workers=2)
    found = [m for m in scanner.scan([str(r) for r in roots], stats=stats) if isinstance(m, ModelFile)]
    return {Path(m.path).name: m for m in found}, stats


def hf_cache_repo(root: Path, repo: str, *, appended: bytes = b"") -> tuple[Path, str]:
    """huggingface_hub's cache layout: blobs named by etag (SHA-256 for LFS), snapshots linking to them."""
    folder = root / ("models--" + repo.replace("/", "--"))
    source = writers.safetensors(root / "download.tmp", TENSORS)
    data = source.read_bytes() + appended
    source.unlink()
    digest = hashlib.sha256(data[:len(data) - len(appended)]).hexdigest()  # the etag of the original
    (folder / "blobs").mkdir(parents=True)
    blob = folder / "blobs" / digest
    blob.write_bytes(data)
    config = folder / "blobs" / hashlib.sha1(b"config").hexdigest()
    config.write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(os.path.relpath(blob, snapshot))
    (snapshot / "config.json").symlink_to(os.path.relpath(config, snapshot))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    return blob, digest


def test_hugging_face_blob_is_named_by_repo_and_its_hash_is_free(tmp_path: Path) -> None:
    blob, digest = hf_cache_repo(tmp_path / "hub", "acme/llama-mini")

    found, stats = scan(tmp_path / "hub")

    model = found[blob.name]
    assert model.model == "acme/llama-mini"
    assert model.sha256 == digest == hashlib.sha256(blob.read_bytes()).hexdigest()
    assert model.details["hf_repo"] == "acme/llama-mini"
    assert model.details["hf_revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert "hugging face" in model.details["sha256_source"]
    assert stats.bytes_hashed == 0  # not read for hashing
    assert len(model.tensors) == len(TENSORS)  # tensor prints taken by sampling reads instead


def test_hugging_face_blob_failing_the_size_check_is_hashed(tmp_path: Path) -> None:
    blob, etag = hf_cache_repo(tmp_path / "hub", "acme/llama-mini", appended=b"tampered")

    found, stats = scan(tmp_path / "hub")

    model = found[blob.name]
    assert model.sha256 == hashlib.sha256(blob.read_bytes()).hexdigest() != etag
    assert "sha256_source" not in model.details and stats.bytes_hashed == blob.stat().st_size


def ollama_models(root: Path, *, manifest_size_delta: int = 0) -> tuple[Path, str]:
    gguf_path = write_gguf(root / "tmp.gguf", name="tiny")
    digest = hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    blob = root / "blobs" / f"sha256-{digest}"
    blob.parent.mkdir(parents=True)
    gguf_path.rename(blob)
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "tinyllama" / "latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
         "size": blob.stat().st_size + manifest_size_delta},
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64, "size": 10}]}))
    return blob, digest


def test_ollama_blob_is_named_by_its_manifest_and_its_hash_is_free(tmp_path: Path) -> None:
    blob, digest = ollama_models(tmp_path / ".ollama" / "models")

    found, stats = scan(tmp_path / ".ollama" / "models" / "blobs")

    model = found[blob.name]
    assert (model.model, model.sha256, model.details["ollama_model"]) == ("tinyllama:latest", digest,
                                                                         "tinyllama:latest")
    assert stats.bytes_hashed == 0


def test_ollama_blob_with_the_wrong_size_is_hashed(tmp_path: Path) -> None:
    blob, digest = ollama_models(tmp_path / "models", manifest_size_delta=1)

    found, stats = scan(tmp_path / "models" / "blobs")

    assert found[blob.name].sha256 == digest and stats.bytes_hashed == blob.stat().st_size


def test_shards_adapters_and_plain_files(tmp_path: Path) -> None:
    writers.shards(tmp_path / "mistral-7b", TENSORS, 2)
    adapter = tmp_path / "my-lora"
    writers.safetensors(adapter / "adapter_model.safetensors",
                        {"base.lora_A.weight": TENSORS["embed.weight"][:8]})
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "acme/llama-mini",
                                                             "peft_type": "LORA"}))
    writers.safetensors(tmp_path / "misc" / "distilled.safetensors", {"w": TENSORS["embed.weight"]})
    # Shards named freely, tied together by the index JSON's weight_map.
    writers.safetensors(tmp_path / "phi-mini" / "part-a.safetensors", {"a": TENSORS["embed.weight"]})
    writers.safetensors(tmp_path / "phi-mini" / "part-b.safetensors", {"b": TENSORS["layers.0.mlp.weight"]})
    (tmp_path / "phi-mini" / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "part-a.safetensors", "b": "part-b.safetensors"}}))

    found, _ = scan(tmp_path)

    assert found["model-00001-of-00002.safetensors"].model == found["model-00002-of-00002.safetensors"].model \
        == "mistral-7b"
    assert found["adapter_model.safetensors"].model == "my-lora"
    assert found["distilled.safetensors"].model == "distilled"
    assert found["part-a.safetensors"].model == found["part-b.safetensors"].model == "phi-mini"


def test_models_command_lists_logical_models(tmp_path: Path) -> None:
    hf_cache_repo(tmp_path / "tree" / "hub", "acme/llama-mini")
    writers.shards(tmp_path / "tree" / "mistral-7b", TENSORS, 2)
    (tmp_path / "tree" / "mistral-7b" / "config.json").write_text(json.dumps({"model_type": "mistral"}))
    writers.gguf_file(tmp_path / "tree" / "exports" / "q.gguf", {"w": np.ones((4, 4), dtype=np.float32)})
    env = {"WEIGHTWARDEN_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("scan", str(tmp_path / "tree"), "--json", "--mode", "user", env=env).returncode == 0

    result = run_cli("models", "--json", "--mode", "user", env=env)

    assert result.returncode == 0, result.stderr
    models = {m["name"]: m for m in json_lines(result.stdout)}
    assert set(models) == {"acme/llama-mini", "mistral-7b", "exported"}
    parameters = sum(v.size for v in TENSORS.values())
    hub = models["acme/llama-mini"]
    assert (hub["files"], hub["formats"], hub["parameters"], hub["dtypes"]) == (1, ["safetensors"], parameters,
                                                                                 ["F32"])
    assert (hub["architecture"], hub["repo_id"], hub["kind"]) == ("LlamaForCausalLM", "acme/llama-mini", "hf-cache")
    sharded = models["mistral-7b"]
    assert (sharded["files"], sharded["parameters"], sharded["architecture"]) == (2, parameters, "mistral")
    assert sharded["size"] == sum(os.path.getsize(p) for p in sharded["paths"])
    assert models["exported"]["architecture"] == "llama" and models["exported"]["parameters"] == 16
    table = run_cli("models", "--mode", "user", env=env)
    assert table.returncode == 0 and "acme/llama-mini" in table.stdout and "MODEL" in table.stdout
