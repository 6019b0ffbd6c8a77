"""safetensors: the JSON header gives every tensor's dtype, shape and byte range (little-endian data).

The header is parsed by the identify check (identify/safetensors_check.py), once per file, with its memory
ceiling; this layout only asks it again when the identification is not at hand.
"""

from __future__ import annotations

from weightwarden.agent.fingerprint.tensors import TensorPlan


def plan(fd: int, size: int) -> TensorPlan:
    # Imported here: the identify package imports the fingerprint package for TensorSpan.
    from weightwarden.agent.identify import safetensors_check

    return safetensors_check.plan(fd, size)
