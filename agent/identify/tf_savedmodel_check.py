"""Structural checks for TensorFlow SavedModel files: `saved_model.pb` and the variables' tensor bundle index.

- saved_model.pb: a SavedModel protobuf: saved_model_schema_version (field 1, varint) then MetaGraphDefs
  (field 2), each opening with its MetaInfoDef (field 1), which carries the tags ("serve") and the
  TensorFlow version. Protobuf writers emit fields in number order, so all of that is at the start.
- variables.index (and checkpoint `.index` files): a LevelDB-format table ending with the 48-byte footer
  whose last 8 bytes are the table magic 57 fb 80 8b 24 75 47 db. TensorFlow writes it uncompressed and its
  first entry has the empty key and a BundleHeaderProto (num_shards, endianness, version). LevelDB's own
  .ldb/.sst files share the footer, so the check here only says "tensor bundle index"; the identifier then
  requires a sibling `.data-*` shard or a saved_model.pb (siblings.py) before it reports a model.
"""

from __future__ import annotations

from typing import Any

from weightwarden.agent.identify.details import clip
from weightwarden.agent.identify.protobuf_walk import LENGTH, VARINT, ProtobufError, Truncated, fields, varint
from weightwarden.agent.safe_open import read_at

TABLE_MAGIC = bytes.fromhex("57fb808b247547db")
FOOTER_BYTES = 48  # two block handles padded to 40 bytes, then the magic
BLOCK_TRAILER_BYTES = 5  # compression type + CRC32C after every block
MAX_TAGS = 16
MAX_META_GRAPHS = 64


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    """The SavedModel protobuf or a tensor bundle index, whichever the file is."""
    if head[:2] == b"\x08\x01":
        return check_saved_model(head, size)
    return check_bundle_index(fd, size, head)


def check_saved_model(head: bytes, size: int) -> dict[str, Any] | None:
    tags: list[str] = []
    details: dict[str, Any] = {"role": "saved-model", "schema_version": None, "tags": tags,
                               "tensorflow_version": None, "meta_graphs": 0}
    try:
        for index, field in enumerate(fields(head, limit=size)):
            if index == 0:
                if (field.number, field.wire_type) != (1, VARINT) or field.value != 1:
                    return None
                details["schema_version"] = field.value
            elif (field.number, field.wire_type) != (2, LENGTH):
                return None
            else:
                details["meta_graphs"] += 1
                if details["meta_graphs"] == 1 and not _meta_info(head, field.start, field.end, details):
                    return None
                if details["meta_graphs"] >= MAX_META_GRAPHS:
                    break
    except Truncated:
        if len(head) >= size:
            return None
    except ProtobufError:
        return None
    return details if details["meta_graphs"] else None


def _meta_info(head: bytes, start: int, end: int, details: dict[str, Any]) -> bool:
    """Read the first MetaGraphDef's MetaInfoDef; True when it names tags or a TensorFlow version."""
    meta_graph = fields(head, start, end, limit=end)
    try:
        first = next(meta_graph, None)
        if first is None or (first.number, first.wire_type) != (1, LENGTH):
            return False
        for field in fields(head, first.start, first.end, limit=first.end):
            if field.wire_type != LENGTH:
                continue
            if field.number == 4 and len(details["tags"]) < MAX_TAGS:
                details["tags"].append(clip(field.text(head, 256)))
            elif field.number == 5:
                details["tensorflow_version"] = clip(field.text(head, 64))
    except Truncated:
        pass  # a MetaInfoDef cut by the window's end: judge what was read
    return bool(details["tags"] or details["tensorflow_version"])


def check_bundle_index(fd: int, size: int, head: bytes) -> dict[str, Any] | None:
    if size < FOOTER_BYTES + 8:
        return None
    footer = head[size - FOOTER_BYTES:size] if len(head) >= size else read_at(fd, size - FOOTER_BYTES, FOOTER_BYTES)
    if len(footer) != FOOTER_BYTES or footer[-8:] != TABLE_MAGIC:
        return None
    try:
        position = 0
        for _ in range(2):  # metaindex handle, then index handle: each (offset, size) varints
            offset, position = varint(footer, position)
            length, position = varint(footer, position)
            if offset + length + BLOCK_TRAILER_BYTES > size - FOOTER_BYTES:
                return None
        return _bundle_header(head, size)
    except (Truncated, ProtobufError):
        return None


def _bundle_header(head: bytes, size: int) -> dict[str, Any] | None:
    """The first block entry: shared key bytes 0, own key bytes 0 (the empty key), then a BundleHeaderProto."""
    shared, position = varint(head, 0)
    unshared, position = varint(head, position)
    value_length, position = varint(head, position)
    if shared or unshared or not value_length or position + value_length > min(len(head), size):
        return None
    details: dict[str, Any] = {"role": "variables-index", "num_shards": 0, "endianness": "little",
                               "bundle_version": None}
    for field in fields(head, position, position + value_length, limit=position + value_length):
        if (field.number, field.wire_type) == (1, VARINT):
            details["num_shards"] = field.value
        elif (field.number, field.wire_type) == (2, VARINT):
            if field.value > 1:
                return None
            details["endianness"] = "big" if field.value else "little"
        elif (field.number, field.wire_type) == (3, LENGTH):
            for version in fields(head, field.start, field.end, limit=field.end):
                if version.number == 1 and version.wire_type == VARINT:
                    details["bundle_version"] = version.value
        else:
            return None
    if not 1 <= details["num_shards"] <= 99_999 or details["bundle_version"] is None:
        return None
    return details
