"""Structural check for Keras H5 models: an HDF5 superblock, then Keras' root attributes.

HDF5 keeps the root group's attributes in its object header near the start of the file; Keras writes
`keras_version`, `backend` and `model_config` (full models) or `layer_names` (weights-only files), and a
`model_weights` group. A plain HDF5 data file has none of these names, so it is rejected. The names are
looked for in the head window only (where h5py places the root object header).
"""

from __future__ import annotations

from typing import Any

SIGNATURE = b"\x89HDF\r\n\x1a\n"
USER_BLOCKS = (0, 512, 1024, 2048)
KERAS_NAMES = (b"keras_version", b"model_config", b"layer_names", b"model_weights", b"backend")


def check(fd: int, size: int, head: bytes, tail: bytes) -> dict[str, Any] | None:
    base = next((offset for offset in USER_BLOCKS if head[offset:offset + 8] == SIGNATURE), None)
    if base is None or len(head) < base + 9:
        return None
    superblock_version = head[base + 8]
    if superblock_version > 3:
        return None
    found = [name.decode() for name in KERAS_NAMES if name in head]
    # keras_version alone could be a stray string: require it with a model or weights marker.
    if "keras_version" not in found or not {"model_config", "layer_names", "model_weights"} & set(found):
        return None
    return {"superblock_version": superblock_version, "user_block": base, "keras_attributes": found,
            "weights_only": "model_config" not in found}
