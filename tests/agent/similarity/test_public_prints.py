"""Public prints files: exported, imported (whole or not at all, with file and line), read by the agent."""

from __future__ import annotations

import base64
import io
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.agent.cli.helpers import WEIGHTWARDEN, run_cli
from weightwarden.agent.events import ModelFile, Provenance
from weightwarden.agent.fingerprint.tensors import fingerprint_array
from weightwarden.agent.similarity import imported, public_prints
from weightwarden.agent.similarity.public_prints import PrintsFileError, PublicModel
from weightwarden.agent.store import Store

HEADER = json.dumps({"format": public_prints.FORMAT, "version": 1})


def sample_model(name: str = "org/base", seed: int = 1) -> PublicModel:
    rng = np.random.default_rng(seed)
    return PublicModel(name, "Hugging Face repo " + name, tuple(
        fingerprint_array(rng.standard_normal((64, 64)).astype(np.float32), f"layer.{i}") for i in range(3)))


def written(*models: PublicModel) -> bytes:
    out = io.StringIO()
    public_prints.write(out, models)
    return out.getvalue().encode()


def test_a_prints_file_reads_back_as_written() -> None:
    models = [sample_model("org/a", 1), sample_model("org/b", 2)]
    found = public_prints.read(io.BytesIO(written(*models)), "prints.jsonl")
    assert [m.model for m in found] == ["org/a", "org/b"]
    assert [t.block for t in found[0].tensors] == [t.block for t in models[0].tensors]
    assert [t.name for t in found[1].tensors] == ["layer.0", "layer.1", "layer.2"]


def model_line(**changes: object) -> str:
    tensor = {"name": "w", "fingerprint": "t1:ab", "elements": 4096, "bytes": 16384,
              "block": base64.b64encode(sample_model().tensors[0].block).decode()}
    record: dict[str, object] = {"model": "org/x", "tensors": [tensor]}
    for key, value in changes.items():
        if key.startswith("tensor_"):
            tensor[key.removeprefix("tensor_")] = value
        else:
            record[key] = value
    return json.dumps(record)


@pytest.mark.parametrize(("content", "line", "says"), [
    (b"", 1, "empty file"),
    (b"not json\n", 1, "not JSON"),
    (json.dumps({"format": "other", "version": 1}).encode() + b"\n", 1, "not a Weightwarden public prints"),
    (json.dumps({"format": public_prints.FORMAT, "version": 9}).encode() + b"\n", 1, "version 9"),
    (f"{HEADER}\n[1, 2]\n".encode(), 2, "expected a JSON object"),
    (f"{HEADER}\n".encode() + b'{"model": "\xff"}\n', 2, "not UTF-8"),
    (f"{HEADER}\n{model_line(model='')}\n".encode(), 2, "'model' must be"),
    (f"{HEADER}\n{model_line(tensors='all')}\n".encode(), 2, "'tensors' must be a list"),
    (f"{HEADER}\n{model_line()}\n{model_line(tensor_block='@@@')}\n".encode(), 3, "not valid base64"),
    (f"{HEADER}\n{model_line(tensor_block=base64.b64encode(b'short').decode())}\n".encode(), 2, "not a tensor corner"),
    (f"{HEADER}\n{model_line(tensor_elements=-1)}\n".encode(), 2, "whole numbers"),
    (f"{HEADER}\n{model_line(tensor_elements=True)}\n".encode(), 2, "whole numbers"),
    (f"{HEADER}\n" .encode() + b"[" * 100_000 + b"\n", 2, "nested too deeply"),
])
def test_a_malformed_prints_file_is_refused_with_its_line(content: bytes, line: int, says: str) -> None:
    with pytest.raises(PrintsFileError) as raised:
        public_prints.read(io.BytesIO(content), "fleet.jsonl")
    assert f"fleet.jsonl:{line}:" in str(raised.value) and says in str(raised.value)


def test_a_line_over_the_limit_is_refused_without_reading_it_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(public_prints, "MAX_LINE_BYTES", 1000)
    with pytest.raises(PrintsFileError, match=r"fleet\.jsonl:2: line longer than"):
        public_prints.read(io.BytesIO(f"{HEADER}\n{model_line()}\n".encode()), "fleet.jsonl")


def config_for(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\ndata_dir = "{tmp_path / "data"}"\n')
    return config


def test_import_list_and_export_through_the_command(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    source = tmp_path / "fleet.jsonl"
    source.write_bytes(written(sample_model("org/a", 1), sample_model("org/b", 2)))
    done = run_cli("prints", "import", str(source), "--config", str(config), "--mode", "user")
    assert done.returncode == 0, done.stderr
    assert "imported 2 public models (6 tensors)" in done.stdout
    (saved,) = (tmp_path / "data" / "public-prints").glob("*.jsonl")
    listed = run_cli("prints", "list", "--config", str(config), "--mode", "user")
    assert listed.returncode == 0 and "org/a" in listed.stdout and "org/b" in listed.stdout
    # A public model file the agent inventoried is exported with the imported ones.
    store = Store(tmp_path / "data" / "weightwarden.db")
    hub = sample_model("org/hub", 3)
    store.upsert_model_files([ModelFile(
        path="/cache/models--org--hub/blobs/" + "a" * 64, format="safetensors", size=1, model="org/hub",
        tensors=hub.tensors,
        provenance=Provenance("discovery", protected=False, reason="public: Hugging Face repo org/hub"))],
        seen=datetime.now(UTC))
    store.close()
    out = tmp_path / "export.jsonl"
    exported = run_cli("prints", "export", str(out), "--config", str(config), "--mode", "user")
    assert exported.returncode == 0, exported.stderr
    with out.open("rb") as exported_file:
        models = public_prints.read(exported_file, str(out))
    assert sorted(m.model for m in models) == ["org/a", "org/b", "org/hub"]
    assert {t.block for m in models if m.model == "org/hub" for t in m.tensors} == {t.block for t in hub.tensors}
    assert saved.exists()


def test_a_broken_file_imports_nothing_and_says_where(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    source = tmp_path / "broken.jsonl"
    source.write_bytes(written(sample_model()) + b"{oops\n")
    done = run_cli("prints", "import", str(source), "--config", str(config), "--mode", "user")
    assert done.returncode == 2
    assert f"{source}:3: not JSON" in done.stderr and "nothing was imported" in done.stderr
    assert not list((tmp_path / "data").glob("public-prints/*.jsonl"))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to run the command as another, ordinary user (setpriv)")
def test_an_ordinary_user_cannot_declare_models_public(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Everything readable by the ordinary user except the agent's data dir, which is root's (system mode).
    place = Path(tempfile.mkdtemp(prefix="ww-prints-"))
    try:
        place.chmod(0o755)
        data = place / "data"
        data.mkdir(mode=0o755)
        config = place / "config.toml"
        config.write_text(f'[agent]\ndata_dir = "{data}"\n')
        source = place / "fleet.jsonl"
        source.write_bytes(written(sample_model()))
        for item in (config, source):
            item.chmod(0o644)
        nobody = pwd.getpwnam("nobody")
        done = subprocess.run(
            ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
             WEIGHTWARDEN, "prints", "import", str(source), "--config", str(config), "--mode", "user"],
            capture_output=True, text=True, timeout=120, env={"PATH": os.environ["PATH"], "HOME": str(place)})
        assert done.returncode == 2, done.stdout + done.stderr
        assert "only the agent's administrator" in done.stderr
        assert not (data / "public-prints").exists() or not list((data / "public-prints").iterdir())
    finally:
        shutil.rmtree(place)


def test_the_agent_sees_imports_come_change_and_go(tmp_path: Path) -> None:
    data = str(tmp_path)
    watcher = imported.ImportedPrints(data)
    assert watcher.changes(force=True) == ({}, [])
    first = imported.save(data, "fleet.jsonl", [sample_model("org/a", 1)])
    fresh, gone = watcher.changes(force=True)
    assert list(fresh) == [first] and [m.model for m in fresh[first]] == ["org/a"] and gone == []
    assert watcher.changes(force=True) == ({}, [])  # unchanged: not read again
    Path(first).write_text("broken\n")
    fresh, gone = watcher.changes(force=True)  # logged; what was read before stays in force
    assert fresh == {} and gone == []
    os.unlink(first)
    assert watcher.changes(force=True) == ({}, [first])
