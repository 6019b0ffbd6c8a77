"""The scanner on real model files and on everything a hostile or messy tree throws at it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from tests.agent.identify import model_dirs
from tests.conftest import can_read_unreadable_files, random_bytes_file, write_gguf, write_safetensors
from weightwarden.agent.events import ModelFile
from weightwarden.agent.fingerprint import CachedResult, FileKey, FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.scanner import Scanner, ScanStats
from weightwarden.agent.walk import ScanIssue


@pytest.fixture(scope="module")
def identifier() -> Identifier:
    return Identifier()


def make_scanner(identifier: Identifier, cache: FingerprintCache | None = None) -> Scanner:
    return Scanner(identifier, cache if cache is not None else FingerprintCache(), workers=2)


def scan(scanner: Scanner, *roots: Path, stats: ScanStats | None = None) -> tuple[list[ModelFile], list[ScanIssue]]:
    items = list(scanner.scan([str(r) for r in roots], stats=stats))
    return ([i for i in items if isinstance(i, ModelFile)], [i for i in items if isinstance(i, ScanIssue)])


def test_finds_models_by_content_with_hashes_and_names(tmp_path: Path, identifier: Identifier) -> None:
    st = write_safetensors(tmp_path / "llama" / "model.safetensors")
    renamed = tmp_path / "misc" / "notes.txt"
    renamed.parent.mkdir()
    shutil.copyfile(write_gguf(tmp_path / "g.gguf", name="tiny-llama"), renamed)
    (tmp_path / "misc" / "readme.md").write_text("GGUF is a format\n")
    random_bytes_file(tmp_path / "fake" / "model.safetensors", 100_000)
    models, issues = scan(make_scanner(identifier), tmp_path)
    by_path = {Path(m.path).relative_to(tmp_path).as_posix(): m for m in models}
    assert sorted(by_path) == ["g.gguf", "llama/model.safetensors", "misc/notes.txt"]
    assert issues == []
    model = by_path["llama/model.safetensors"]
    assert model.format == "safetensors"
    assert model.sha256 == hashlib.sha256(st.read_bytes()).hexdigest()
    assert model.model == "llama"
    assert model.quick_fingerprint and model.quick_fingerprint.startswith("q1:")
    assert by_path["misc/notes.txt"].format == "gguf"
    assert by_path["misc/notes.txt"].model == "tiny-llama"
    assert set(model.to_dict()) >= {"path", "format", "size", "sha256", "quick_fingerprint", "model"}


def test_second_scan_opens_nothing(tmp_path: Path, identifier: Identifier, monkeypatch: pytest.MonkeyPatch) -> None:
    write_safetensors(tmp_path / "a" / "model.safetensors")
    for i in range(50):
        (tmp_path / f"plain{i}.txt").write_text("x" * i)
    cache = FingerprintCache()
    first, _ = scan(make_scanner(identifier, cache), tmp_path)
    opened: list[str] = []
    real_open = os.open

    def spy(path: str, *args: int, **kwargs: object) -> int:
        opened.append(path)
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    stats = ScanStats()
    second, _ = scan(make_scanner(identifier, cache), tmp_path, stats=stats)
    assert second == first
    assert stats.cache_hits == 51
    assert opened == []


def test_changed_file_is_looked_at_again(tmp_path: Path, identifier: Identifier) -> None:
    path = write_safetensors(tmp_path / "model.safetensors", seed=1)
    cache = FingerprintCache()
    (before,), _ = scan(make_scanner(identifier, cache), tmp_path)
    write_safetensors(path, seed=2)
    os.utime(path, ns=(before.mtime_ns or 0 + 10**9, (before.mtime_ns or 0) + 10**9))
    (after,), _ = scan(make_scanner(identifier, cache), tmp_path)
    assert after.sha256 != before.sha256


def test_fifo_does_not_block_and_symlink_loop_is_not_followed(tmp_path: Path, identifier: Identifier) -> None:
    write_safetensors(tmp_path / "model.safetensors")
    os.mkfifo(tmp_path / "model.gguf")  # no writer: opening it blocking would hang forever
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "cycle").symlink_to(tmp_path)
    models, issues = scan(make_scanner(identifier), tmp_path)
    assert [Path(m.path).name for m in models] == ["model.safetensors"]
    assert issues == []


def test_fifo_given_directly_is_reported_not_opened(tmp_path: Path, identifier: Identifier) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome = make_scanner(identifier).examine(str(fifo))
    assert isinstance(outcome, ScanIssue) and "fifo" in outcome.reason


def _scan_as_nobody(scanner: Scanner, root: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Root reads every file whatever its mode, so scan from a forked child that dropped to `nobody`:
    the kernel's own permission check is what the test exercises."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            models, issues = scan(scanner, root)
            payload = json.dumps([[Path(m.path).name for m in models],
                                  [(Path(i.path).name, i.reason) for i in issues]])
            os.write(write_end, payload.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    names, issues = json.loads(data)
    return names, [tuple(i) for i in issues]


def test_unreadable_file_is_an_issue_and_the_scan_goes_on(tmp_path: Path, identifier: Identifier) -> None:
    locked = write_safetensors(tmp_path / "locked.safetensors", seed=3)
    write_safetensors(tmp_path / "open.safetensors", seed=4).chmod(0o644)
    locked.chmod(0)
    scanner = make_scanner(identifier)
    if can_read_unreadable_files():
        for folder in [tmp_path, *tmp_path.parents]:  # let `nobody` reach the files
            if folder == Path("/"):
                break
            folder.chmod(folder.stat().st_mode | 0o005)
        names, issues = _scan_as_nobody(scanner, tmp_path)
    else:
        models, found = scan(scanner, tmp_path)
        names, issues = [Path(m.path).name for m in models], [(Path(i.path).name, i.reason) for i in found]
    assert names == ["open.safetensors"]
    assert issues == [("locked.safetensors", "Permission denied")]


def test_file_deleted_while_hashing_is_reported_and_not_recorded(tmp_path: Path, identifier: Identifier) -> None:
    victim = write_safetensors(tmp_path / "model.safetensors", rows=4096)
    cache = FingerprintCache()
    outcome = make_scanner(identifier, cache).examine(str(victim), on_identified=lambda _m: victim.unlink())
    assert isinstance(outcome, ScanIssue)
    assert "deleted" in outcome.reason
    assert len(cache) == 0


def test_file_vanishing_before_it_is_read(tmp_path: Path, identifier: Identifier) -> None:
    path = write_safetensors(tmp_path / "model.safetensors")
    info = os.stat(path)
    path.unlink()
    outcome = make_scanner(identifier).examine(str(path), info)
    assert isinstance(outcome, ScanIssue) and "vanished" in outcome.reason


def test_non_utf8_name_is_reported_escaped_with_raw_bytes(tmp_path: Path, identifier: Identifier) -> None:
    raw_dir = os.fsencode(tmp_path)
    raw_name = raw_dir + b"/mod\xe8le.safetensors"
    write_safetensors(Path(os.fsdecode(raw_name)))
    (model,), issues = scan(make_scanner(identifier), tmp_path)
    assert issues == []
    assert model.shown.endswith("mod\\xe8le.safetensors")  # reported escaped
    assert bytes.fromhex(model.path_hex or "") == raw_name
    assert os.fsencode(model.path) == raw_name  # its identity is the raw name: it opens, marks, matches
    assert model.to_dict()["path"] == model.shown
    json.dumps(model.to_dict()).encode("utf-8")


def _sparse_safetensors(path: Path, data_bytes: int) -> None:
    """A valid safetensors header announcing `data_bytes` of float32 data that the file holds as a hole."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [data_bytes // 4], "data_offsets": [0, data_bytes]}})
    blob = header.encode() + b" " * (-len(header) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(blob)) + blob)
        handle.truncate(8 + len(blob) + data_bytes)


def test_one_terabyte_sparse_model_is_identified_without_hashing_it(tmp_path: Path, identifier: Identifier) -> None:
    _sparse_safetensors(tmp_path / "model.safetensors", 1 << 40)
    with open(tmp_path / "zeros.safetensors", "wb") as zeros:
        zeros.truncate(1 << 40)  # all holes: not a model at all
    stats = ScanStats()
    (model,), issues = scan(make_scanner(identifier), tmp_path, stats=stats)
    assert issues == []
    assert Path(model.path).name == "model.safetensors" and model.format == "safetensors"
    assert model.sha256 is None and "sparse" in model.details["sha256_skipped"]
    assert model.quick_fingerprint
    assert stats.bytes_hashed == 0


# ---------------------------------------------------------------- companions examined before their model file

def _openvino_source(folder: Path) -> tuple[Path, Path]:
    return model_dirs.openvino_pair(folder)  # (model file, weights)


def _onnx_source(folder: Path) -> tuple[Path, Path]:
    model = model_dirs.onnx_with_external_data(folder)  # real onnx.save_model(save_as_external_data=True)
    return model, model.with_name(model.name + ".data")


COMPANION_SOURCES = [_openvino_source, _onnx_source]


@pytest.mark.parametrize("source", COMPANION_SOURCES, ids=["openvino", "onnx-external-data"])
def test_a_companion_cached_as_no_model_joins_its_model_file_once_that_arrives(
        tmp_path: Path, identifier: Identifier, source: Any) -> None:
    model_file, weights = source(tmp_path / "source")
    target = tmp_path / "copy"
    target.mkdir()
    scanner = make_scanner(identifier)
    shutil.copyfile(weights, target / weights.name)  # the weights arrive first, as `cp -r` may write them

    assert scanner.examine(str(target / weights.name)) is None
    assert scanner.cache.get(FileKey.of(os.stat(target / weights.name))) == CachedResult(None)

    shutil.copyfile(model_file, target / model_file.name)
    primary = scanner.examine(str(target / model_file.name))
    assert isinstance(primary, ModelFile)
    assert scanner.stale_partners(str(target / model_file.name), primary) == [str(target / weights.name)]
    companion = scanner.examine(str(target / weights.name), recheck_non_model=True)

    assert isinstance(companion, ModelFile) and companion.format == primary.format
    assert companion.model == primary.model and companion.details["part_of"] == model_file.name
    assert companion.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert scanner.examine(str(target / weights.name)) == companion  # the cache now says so too
    assert scanner.stale_partners(str(target / model_file.name), primary) == []


@pytest.mark.parametrize("source", COMPANION_SOURCES, ids=["openvino", "onnx-external-data"])
def test_a_tree_scan_recognises_companions_seen_before_their_model_file_and_rescans_by_stat(
        tmp_path: Path, identifier: Identifier, source: Any) -> None:
    model_file, weights = source(tmp_path / "source")
    tree = tmp_path / "tree"
    tree.mkdir()
    scanner = make_scanner(identifier)
    shutil.copyfile(weights, tree / weights.name)
    assert scan(scanner, tree) == ([], [])  # cached as "not a model"
    shutil.copyfile(model_file, tree / model_file.name)

    stats = ScanStats()
    models, issues = scan(scanner, tree, stats=stats)

    assert issues == []
    assert sorted(Path(m.path).name for m in models) == sorted([model_file.name, weights.name])  # each once
    assert len({m.model for m in models}) == 1
    assert (stats.files, stats.models) == (2, 2)

    again = ScanStats()
    assert sorted(m.path for m in scan(scanner, tree, stats=again)[0]) == sorted(m.path for m in models)
    assert again.cache_hits == again.files == 2 and again.bytes_hashed == stats.bytes_hashed


def test_a_bundle_index_cached_as_no_model_joins_once_its_data_shard_arrives(tmp_path: Path,
                                                                             identifier: Identifier) -> None:
    model_dirs.tensor_bundle(tmp_path / "source" / "ckpt-3", {"w": model_dirs.WEIGHTS})
    target = tmp_path / "copy"
    target.mkdir()
    index, shard = target / "ckpt-3.index", target / "ckpt-3.data-00000-of-00001"
    scanner = make_scanner(identifier)
    shutil.copyfile(tmp_path / "source" / index.name, index)
    assert scanner.examine(str(index)) is None  # a LevelDB table with nothing beside it: not a model yet

    shutil.copyfile(tmp_path / "source" / shard.name, shard)
    data = scanner.examine(str(shard))
    assert isinstance(data, ModelFile) and data.details["part_of"] == index.name
    assert scanner.stale_partners(str(shard), data) == [str(index)]
    again = scanner.examine(str(index), recheck_non_model=True)

    assert isinstance(again, ModelFile) and again.format == "tf-savedmodel" and again.model == data.model
    assert scanner.stale_partners(str(shard), data) == []


class _PausingIdentifier:
    """The real identifier; its first look at `paused` waits, after identifying, until `resume` is set."""

    def __init__(self, identifier: Identifier, paused: Path) -> None:
        self.identifier, self.paused = identifier, str(paused)
        self.identified, self.resume = threading.Event(), threading.Event()

    def identify_fd(self, fd: int, size: int, path: str | bytes | None = None) -> Any:
        found = self.identifier.identify_fd(fd, size, path)
        if path == self.paused and not self.identified.is_set():
            self.identified.set()
            assert self.resume.wait(timeout=30)
        return found


def test_a_companion_whose_verdict_lands_after_its_model_file_was_examined_is_looked_at_again(
        tmp_path: Path, identifier: Identifier) -> None:
    xml_source, weights_source = model_dirs.openvino_pair(tmp_path / "source")
    target = tmp_path / "copy"
    target.mkdir()
    weights, xml = target / weights_source.name, target / xml_source.name
    shutil.copyfile(weights_source, weights)
    pausing = _PausingIdentifier(identifier, weights)
    scanner = Scanner(cast(Identifier, pausing), FingerprintCache(), workers=2)
    outcome: list[Any] = []
    examining = threading.Thread(target=lambda: outcome.append(scanner.examine(str(weights))))
    examining.start()
    try:
        assert pausing.identified.wait(timeout=30)  # the weights were looked at alone: "not a model" so far
        shutil.copyfile(xml_source, xml)
        primary = scanner.examine(str(xml))
        assert isinstance(primary, ModelFile)
        assert scanner.stale_partners(str(xml), primary) == []  # the weights' verdict is not cached yet
    finally:
        pausing.resume.set()
        examining.join(timeout=30)

    (companion,) = outcome
    assert isinstance(companion, ModelFile) and companion.model == primary.model
    assert scanner.cache.get(FileKey.of(os.stat(weights))) is not None
    assert scanner.examine(str(weights)) == companion


def test_an_mlpackage_copied_manifest_and_weights_first_is_recognised_once_its_model_spec_arrives(
        tmp_path: Path, identifier: Identifier) -> None:
    source = model_dirs.mlpackage(tmp_path / "source" / "tiny.mlpackage")
    package = tmp_path / "copy" / "tiny.mlpackage"
    scanner = make_scanner(identifier)
    spec = Path("Data/com.apple.CoreML/model.mlmodel")
    for item in (Path("Manifest.json"), Path("Data/com.apple.CoreML/weights/weight.bin")):
        (package / item).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / item, package / item)
    assert scan(scanner, package) == ([], [])  # a manifest without its spec, and raw weights: no model yet
    shutil.copyfile(source / spec, package / spec)

    models, issues = scan(scanner, package)

    assert issues == []
    assert sorted(Path(m.path).relative_to(package).as_posix() for m in models) == [
        "Data/com.apple.CoreML/model.mlmodel", "Data/com.apple.CoreML/weights/weight.bin", "Manifest.json"]
    assert {m.model for m in models} == {"tiny"}


def test_a_scan_ends_at_the_next_file_once_stopped(tmp_path: Path, identifier: Identifier) -> None:
    """A shutdown must not wait for a whole tree: the walk ends at the next file once `stop` is set."""
    for folder in range(20):
        (tmp_path / f"d{folder}").mkdir()
        for name in range(50):
            (tmp_path / f"d{folder}" / f"f{name}.txt").write_text("not a model")
    write_safetensors(tmp_path / "d0" / "a.safetensors")
    stop = threading.Event()
    stats = ScanStats()
    scanner = make_scanner(identifier)
    list(scanner.scan([str(tmp_path)], stats=stats, stop=stop,
                      on_progress=lambda s: stop.set() if s.files >= 100 else None))
    assert 100 <= stats.files < 1000  # stopped early, not after all 1,001 files
    whole = ScanStats()
    list(make_scanner(identifier).scan([str(tmp_path)], stats=whole))
    assert whole.files == 1001
