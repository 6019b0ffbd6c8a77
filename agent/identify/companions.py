"""Files that are model artifacts only through another file: identified by the file that names them.

Their bytes are raw tensors with no signature, so content cannot decide; the model file beside them can,
and it is identified by content first:
- TensorFlow variables data shards `<prefix>.data-0000k-of-0000n`: through `<prefix>.index` (a tensor
  bundle index, itself confirmed by its siblings).
- OpenVINO weights `<stem>.bin`: through `<stem>.xml` (OpenVINO IR).
- Paddle parameters `<stem>.pdiparams`: through `<stem>.pdmodel` (a ProgramDesc) or, from Paddle 3 on,
  `<stem>.json` (a PIR program).
- CoreML .mlpackage items under `Data/`: through the package's Manifest.json (itemInfoEntries).
- ONNX external data: any file whose path (relative to an .onnx model in its folder or the folder above)
  is a `location` of the model's external tensors.

A companion is reported with its model's format and details {"role", "part_of": the model file relative
to the companion's folder}, plus the model's declared name, so both are placed in one logical model.
Primaries are identified once per (path, inode, size, mtime) and cached.

The other direction, companion_paths(), lists the companions a model file names. A companion examined
before its model file existed (`cp -r` writes the .bin before the .xml) was cached as "not a model"; the
scanner examines such files again once the model file naming them is identified. primary_path() goes back
from a companion to its model file, which may itself have been cached as "not a model" when it needs the
files beside it to count (siblings.py: a tensor bundle index without its data shards, an .mlpackage
manifest without its model spec).
"""

from __future__ import annotations

import functools
import os
import stat
import time
from collections.abc import Callable
from typing import Any

from weightwarden.agent.identify import paddle_check
from weightwarden.agent.identify.identification import Identification
from weightwarden.agent.identify.onnx_external import external_locations
from weightwarden.agent.identify.siblings import DATA_SHARD, is_regular
from weightwarden.agent.safe_open import open_regular, read_at

PrimaryIdentifier = Callable[[str], Identification | None]
MAX_ONNX_GRAPH_BYTES = 64 << 20  # models with external data keep only the graph in the .onnx
MAX_ONNX_MODELS = 32  # .onnx files looked at per folder
MAX_PACKAGE_DEPTH = 8  # folders between an .mlpackage's Data/ and an item
MAX_COMPANIONS = 4096  # companion paths listed per model file (ONNX may keep one file per tensor)
# A folder listing is cached by the folder's mtime, but a file created within the same timestamp tick as
# the listing leaves the mtime unchanged; a folder changed this recently is listed afresh ("racy git").
RACY_FOLDER_NS = 2_000_000_000  # two seconds: the coarsest common mtime granularity (FAT)
RACY_REUSE_NS = 100_000_000  # a listing of a folder still changing is reused for a tenth of a second


def identify_companion(path: str, identify_primary: PrimaryIdentifier) -> Identification | None:
    folder, name = os.path.split(path)
    folder = folder or "."
    for rule in (_tf_data_shard, _openvino_weights, _paddle_parameters, _mlpackage_item, _onnx_external_data):
        found = rule(folder, name, path, identify_primary)
        if found is not None:
            return found
    return None


def companion_paths(path: str, identification: Identification) -> list[str]:
    """The existing regular files the model file at `path` names as its companions (MAX_COMPANIONS at most):
    the files identify_companion() would report as part of it."""
    folder, name = os.path.split(path)
    folder = folder or "."
    details = identification.details
    if "part_of" in details:
        return []  # a companion names no companions of its own
    role, format_id = details.get("role"), identification.format
    names: list[str] = []
    if format_id == "openvino-ir" and name.endswith(".xml"):
        names = [name.removesuffix(".xml") + ".bin"]
    elif format_id == "paddle" and role == "program" and name.endswith((".pdmodel", ".json")):
        names = [name.rpartition(".")[0] + ".pdiparams"]
    elif format_id == "tf-savedmodel" and role == "variables-index" and name.endswith(".index"):
        count = details.get("num_shards")
        if isinstance(count, int) and 0 < count <= 99_999:
            prefix = name.removesuffix(".index")
            names = [f"{prefix}.data-{shard:05d}-of-{count:05d}" for shard in range(min(count, MAX_COMPANIONS))]
    elif format_id == "coreml" and role == "mlpackage-manifest":
        return _package_items(os.path.join(folder, "Data"), details.get("item_paths", []))
    elif format_id == "onnx":
        # The locations _onnx_external_data accepts: in the model's folder or one folder below it.
        names = sorted(location for location in _locations(path) if location.count("/") <= 1)[:MAX_COMPANIONS]
    candidates = (os.path.join(folder, *relative.split("/")) for relative in names)
    return [candidate for candidate in candidates if candidate != path and is_regular(candidate)]


def primary_path(path: str, identification: Identification) -> str | None:
    """The model file a companion at `path` belongs to (its details' `part_of`), or the manifest of the
    .mlpackage a CoreML model spec lies in (which counts only once that spec is there); None otherwise."""
    part_of = identification.details.get("part_of")
    if isinstance(part_of, str) and part_of:
        return os.path.normpath(os.path.join(os.path.dirname(path) or ".", *part_of.split("/")))
    if identification.format == "coreml" and identification.details.get("role") != "mlpackage-manifest":
        parts = path.replace(os.sep, "/").split("/")
        for depth in range(2, min(len(parts), MAX_PACKAGE_DEPTH + 2)):
            if parts[-depth] == "Data":
                manifest = os.path.join("/".join(parts[:-depth]) or "/", "Manifest.json")
                return manifest if is_regular(manifest) else None
    return None


def _package_items(data: str, item_paths: Any) -> list[str]:
    """Regular files under the manifest's items (each a file or a folder under Data/), walked without
    following links, MAX_PACKAGE_DEPTH folders deep and MAX_COMPANIONS files at most."""
    found: list[str] = []
    pending = [(os.path.join(data, *str(item).strip("/").split("/")), 0) for item in item_paths
               if isinstance(item, str) and item.strip("/") and ".." not in item.split("/")]
    while pending and len(found) < MAX_COMPANIONS:
        item, depth = pending.pop()
        try:
            mode = os.stat(item, follow_symlinks=False).st_mode
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(mode):
            found.append(item)
        elif stat.S_ISDIR(mode) and depth < MAX_PACKAGE_DEPTH:
            try:
                with os.scandir(item) as entries:
                    for entry in entries:
                        if len(pending) >= MAX_COMPANIONS:
                            break  # memory stays bounded in a folder of millions of entries
                        pending.append((entry.path, depth + 1))
            except OSError:
                continue
    return sorted(set(found))


def _tf_data_shard(folder: str, name: str, path: str, identify: PrimaryIdentifier) -> Identification | None:
    match = DATA_SHARD.match(name)
    if match is None:
        return None
    index = f"{match['prefix']}.index"
    primary = _primary(os.path.join(folder, index), identify, "tf-savedmodel", "variables-index")
    if primary is None or int(match["count"]) != primary.details.get("num_shards"):
        return None
    return _companion(primary, "variables-data", index, shard=int(match["shard"]), shard_count=int(match["count"]))


def _openvino_weights(folder: str, name: str, path: str, identify: PrimaryIdentifier) -> Identification | None:
    if not name.endswith(".bin"):
        return None
    xml = name.removesuffix(".bin") + ".xml"
    primary = _primary(os.path.join(folder, xml), identify, "openvino-ir")
    return None if primary is None else _companion(primary, "weights", xml)


def _paddle_parameters(folder: str, name: str, path: str, identify: PrimaryIdentifier) -> Identification | None:
    if not name.endswith(".pdiparams"):
        return None
    stem = name.removesuffix(".pdiparams")
    for program in (stem + ".pdmodel", stem + ".json"):  # Paddle 2 ProgramDesc, Paddle 3 PIR program
        primary = _primary(os.path.join(folder, program), identify, "paddle", "program")
        if primary is not None:
            issue = _paddle_parameters_issue(path)
            return _companion(primary, "parameters", program, **({"malformed": issue} if issue else {}))
    return None


def _paddle_parameters_issue(path: str) -> str | None:
    """Named by its program, the file counts whatever it holds (a copy must not hide by being garbled); what
    is wrong with its tensor stream is reported with it."""
    try:
        fd, info = open_regular(path)
    except OSError:
        return None
    try:
        return paddle_check.parameters_issue(read_at(fd, 0, paddle_check.PARAMETERS_HEAD_BYTES), info.st_size)
    except OSError:
        return None
    finally:
        os.close(fd)


def _mlpackage_item(folder: str, name: str, path: str, identify: PrimaryIdentifier) -> Identification | None:
    parts = path.replace(os.sep, "/").split("/")
    # The nearest Data/ folder above the file whose parent holds a manifest naming the file.
    for depth in range(2, min(len(parts), MAX_PACKAGE_DEPTH + 2)):
        if parts[-depth] != "Data":
            continue
        root = "/".join(parts[:-depth]) or "/"
        primary = _primary(os.path.join(root, "Manifest.json"), identify, "coreml", "mlpackage-manifest")
        if primary is None:
            return None
        item = "/".join(parts[-depth + 1:])
        listed = primary.details.get("item_paths", [])
        if any(item == entry.rstrip("/") or item.startswith(entry.rstrip("/") + "/") for entry in listed):
            return _companion(primary, "mlpackage-item", "/".join([".."] * (depth - 1) + ["Manifest.json"]))
        return None
    return None


def _onnx_external_data(folder: str, name: str, path: str, identify: PrimaryIdentifier) -> Identification | None:
    # Locations are relative to the model's folder: the file's own folder, or the one above for `sub/file`.
    parent, subfolder = os.path.split(folder)
    bases = [(folder, name, "")]
    if parent and subfolder:
        bases.append((parent, f"{subfolder}/{name}", "../"))
    for base, relative, up in bases:
        for model_name in _onnx_models(base):
            model = os.path.join(base, model_name)
            if model == path or relative not in _locations(model):
                continue
            primary = _primary(model, identify, "onnx")
            if primary is not None:
                return _companion(primary, "external-data", up + model_name)
    return None


def _companion(primary: Identification, role: str, part_of: str, **extra: Any) -> Identification:
    details: dict[str, Any] = {"role": role, "part_of": part_of, **extra}
    if isinstance(primary.details.get("name"), str):
        details["name"] = primary.details["name"]  # the model's declared name, so both land in one model
    return Identification(format=primary.format, confirmed=True, details=details)


def _primary(path: str, identify: PrimaryIdentifier, format_id: str, role: str | None = None
             ) -> Identification | None:
    key = _stat_key(path)
    if key is None:
        return None
    try:
        found = _identify_cached(identify, path, key)
    except _NoModel:
        return None
    if found.format != format_id or (role is not None and found.details.get("role") != role):
        return None
    return found


class _NoModel(Exception):
    """Raised, not returned, so that lru_cache keeps only models: whether a file counts can depend on the
    files beside it (siblings.py: a manifest without its model spec), which its own stat key does not see."""


@functools.lru_cache(maxsize=1024)
def _identify_cached(identify: PrimaryIdentifier, path: str, key: tuple[int, ...]) -> Identification:
    try:
        found = identify(path)
    except (OSError, ValueError):
        found = None
    if found is None:
        raise _NoModel(path)
    return found


def _stat_key(path: str) -> tuple[int, ...] | None:
    try:
        info = os.stat(path, follow_symlinks=False)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)


def _onnx_models(folder: str) -> tuple[str, ...]:
    key = _stat_key(folder)
    if key is None:
        return ()
    now = time.time_ns()
    if now - key[3] >= RACY_FOLDER_NS:
        return _onnx_names(folder, key)
    # Changed just now: a file added in the same tick keeps this mtime, so the listing is taken afresh, but
    # at most once per RACY_REUSE_NS whatever its mtime does: a folder being filled (a wheel installing
    # thousands of files) changes with each file and would otherwise be listed once per file. An .onnx that
    # lands after the listing is examined itself (onnx_file_seen) and rechecks its data files then.
    recent = _racy_listings.get(folder)
    if recent is not None and now - recent[0] < RACY_REUSE_NS:
        return recent[1]
    names = _list_onnx(folder)
    if len(_racy_listings) >= 1024:
        _racy_listings.clear()
    _racy_listings[folder] = (now, names)
    return names


_racy_listings: dict[str, tuple[int, tuple[str, ...]]] = {}  # folder -> (listed at, .onnx names)


def onnx_file_seen(path: str) -> None:
    """An .onnx file is being examined: its folder's listing is taken afresh next time, so the data files
    rechecked after it (Scanner.stale_partners) see it."""
    _racy_listings.pop(os.path.dirname(path), None)


@functools.lru_cache(maxsize=1024)
def _onnx_names(folder: str, key: tuple[int, ...]) -> tuple[str, ...]:
    return _list_onnx(folder)


def _list_onnx(folder: str) -> tuple[str, ...]:
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries if entry.name.endswith(".onnx")]
    except OSError:
        return ()
    return tuple(sorted(names)[:MAX_ONNX_MODELS])


def _locations(model: str) -> frozenset[str]:
    key = _stat_key(model)
    return frozenset() if key is None else _locations_cached(model, key)


@functools.lru_cache(maxsize=256)
def _locations_cached(model: str, key: tuple[int, ...]) -> frozenset[str]:
    try:
        fd, info = open_regular(model)
    except OSError:
        return frozenset()
    try:
        if info.st_size > MAX_ONNX_GRAPH_BYTES:
            return frozenset()
        return external_locations(read_at(fd, 0, info.st_size))
    except OSError:
        return frozenset()
    finally:
        os.close(fd)
