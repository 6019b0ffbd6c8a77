"""Public model prints in a file: what `weightwarden prints export` writes and `prints import` reads.

Tensors equal or similar to public weights are no evidence of theft (matcher.py). The machine knows the
public models in its Hugging Face cache and Ollama library; a fleet shares the rest as a prints file, so a
workstation that never downloaded a base model still knows it is public.

Format (JSON Lines, UTF-8), version 1:
    {"format": "weightwarden-public-prints", "version": 1}
    {"model": "ORG/NAME", "origin": "...", "tensors": [{"name": ..., "fingerprint": ..., "elements": N,
     "bytes": N, "block": "<base64 corner>"}, ...]}
one model per line. Tensors carry only the corner (fingerprint/blocks.py), never the weights.

A file that is not well-formed is refused whole, with its line and what is wrong: a half-read prints file
would quietly make some private tensors look public or not.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from weightwarden.agent.events import TensorPrint
from weightwarden.agent.fingerprint.blocks import decode_block

FORMAT = "weightwarden-public-prints"
VERSION = 1
MAX_LINE_BYTES = 64 << 20  # one model's corners: a 1,000-tensor model is about 3 MiB
MAX_MODELS = 100_000
MAX_TENSORS = 200_000  # per model
MAX_NAME = 1024


class PrintsFileError(ValueError):
    """`where` is "FILE:LINE"; the message says what is wrong there."""


@dataclass(frozen=True, slots=True)
class PublicModel:
    model: str
    origin: str
    tensors: tuple[TensorPrint, ...]


def write(out: IO[str], models: Iterable[PublicModel]) -> int:
    """Write a prints file; returns the models written."""
    out.write(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
    count = 0
    for model in models:
        out.write(json.dumps({"model": model.model, "origin": model.origin, "tensors": [
            {"name": t.name, "fingerprint": t.fingerprint, "elements": t.elements, "bytes": t.bytes,
             "block": base64.b64encode(t.block).decode("ascii")} for t in model.tensors if t.block]},
            separators=(",", ":")) + "\n")
        count += 1
    return count


def read(source: IO[bytes], name: str) -> list[PublicModel]:
    """Every model of a prints file; PrintsFileError at the first problem (nothing is half-read)."""
    return list(_models(source, name))


def _models(source: IO[bytes], name: str) -> Iterator[PublicModel]:
    number = 0
    for number, line in enumerate(_lines(source, name), start=1):
        where = f"{name}:{number}"
        record = _json(line, where)
        if number == 1:
            if record.get("format") != FORMAT:
                raise PrintsFileError(f"{where}: not a Weightwarden public prints file (format is not {FORMAT!r})")
            if record.get("version") != VERSION:
                raise PrintsFileError(f"{where}: prints file version {record.get('version')!r} is not {VERSION}")
            continue
        if number > MAX_MODELS + 1:
            raise PrintsFileError(f"{where}: more than {MAX_MODELS:,} models")
        yield _model(record, where)
    if number == 0:
        raise PrintsFileError(f"{name}:1: empty file, not a Weightwarden public prints file")


def _lines(source: IO[bytes], name: str) -> Iterator[bytes]:
    number = 0
    while True:
        line = source.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise PrintsFileError(f"{name}:{number}: line longer than {MAX_LINE_BYTES >> 20} MiB")
        if line.strip():
            yield line


def _json(line: bytes, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise PrintsFileError(f"{where}: not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise PrintsFileError(f"{where}: not JSON: {error.msg} at column {error.colno}") from None
    except RecursionError:
        raise PrintsFileError(f"{where}: JSON nested too deeply") from None
    if not isinstance(record, dict):
        raise PrintsFileError(f"{where}: expected a JSON object")
    return record


def _model(record: dict[str, Any], where: str) -> PublicModel:
    model, origin, tensors = record.get("model"), record.get("origin", ""), record.get("tensors")
    if not isinstance(model, str) or not model or len(model) > MAX_NAME:
        raise PrintsFileError(f"{where}: 'model' must be a non-empty string of at most {MAX_NAME} characters")
    if not isinstance(origin, str) or len(origin) > MAX_NAME:
        raise PrintsFileError(f"{where}: 'origin' must be a string of at most {MAX_NAME} characters")
    if not isinstance(tensors, list):
        raise PrintsFileError(f"{where}: 'tensors' must be a list")
    if len(tensors) > MAX_TENSORS:
        raise PrintsFileError(f"{where}: more than {MAX_TENSORS:,} tensors")
    return PublicModel(model, origin, tuple(_tensor(item, f"{where}: tensor {i}") for i, item in enumerate(tensors)))


def _tensor(item: Any, where: str) -> TensorPrint:
    if not isinstance(item, dict):
        raise PrintsFileError(f"{where}: expected an object")
    name, fingerprint = item.get("name", ""), item.get("fingerprint")
    elements, size, block = item.get("elements"), item.get("bytes"), item.get("block")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise PrintsFileError(f"{where}: 'name' must be a string of at most {MAX_NAME} characters")
    if not isinstance(fingerprint, str) or not fingerprint or len(fingerprint) > 128:
        raise PrintsFileError(f"{where}: 'fingerprint' must be a non-empty string")
    if type(elements) is not int or type(size) is not int or elements < 0 or size < 0:
        raise PrintsFileError(f"{where}: 'elements' and 'bytes' must be whole numbers >= 0")
    if not isinstance(block, str):
        raise PrintsFileError(f"{where}: 'block' must be base64 text")
    try:
        raw = base64.b64decode(block, validate=True)
    except binascii.Error:
        raise PrintsFileError(f"{where}: 'block' is not valid base64") from None
    if decode_block(raw) is None:
        raise PrintsFileError(f"{where}: 'block' is not a tensor corner (wrong size or header)")
    return TensorPrint(fingerprint, elements, size, True, name, raw)
