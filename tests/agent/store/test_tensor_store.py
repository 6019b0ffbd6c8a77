"""Tensor prints survive the database: per model file (indexed by fingerprint) and in the file cache."""

from __future__ import annotations

from pathlib import Path

from weightwarden.agent.events import ModelFile, TensorPrint, utc_now
from weightwarden.agent.fingerprint import CachedResult, FileKey
from weightwarden.agent.store import Store

PRINTS = (TensorPrint("t1:" + "a" * 32, 4096, 16384, True), TensorPrint("t1:" + "b" * 32, 64, 256, False))


def test_model_file_tensors_round_trip_and_are_replaced(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    model = ModelFile(path="/m/model.safetensors", format="safetensors", size=1, model="m", tensors=PRINTS)
    store.upsert_model_files(iter([model]), seen=utc_now())  # any iterable, read once
    assert store.model_files() == [model]

    store.upsert_model_files([ModelFile(path=model.path, format="safetensors", size=1, model="m",
                                        tensors=PRINTS[1:])], seen=utc_now())
    assert store.model_files()[0].tensors == PRINTS[1:]
    rows = list(store.db.query("select path from model_tensors where fingerprint = ?", [PRINTS[1].fingerprint]))
    assert rows == [{"path": model.path}]
    store.close()


def test_file_cache_keeps_tensor_prints(tmp_path: Path) -> None:
    store = Store(tmp_path / "ww.db")
    key = FileKey(1, 2, 3, 4)
    store.save_file_cache({key: CachedResult("gguf", "f" * 64, "q1:x", {}, PRINTS),
                           FileKey(1, 5, 3, 4): CachedResult(None)})
    store.close()

    again = Store(tmp_path / "ww.db", read_only=True)
    loaded = again.load_file_cache()
    again.close()
    assert loaded[key].tensors == PRINTS
    assert loaded[FileKey(1, 5, 3, 4)].tensors == ()
