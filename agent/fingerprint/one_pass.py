"""SHA-256 and tensor fingerprints from one sequential read of a model file."""

from __future__ import annotations

from weightwarden.agent.events import TensorPrint
from weightwarden.agent.fingerprint.layouts import plan_tensors
from weightwarden.agent.fingerprint.sha256 import DEFAULT_BLOCK, sha256_fd
from weightwarden.agent.fingerprint.tensors import TensorPlan, TensorSampler, sample_by_reads


def hash_with_tensors(fd: int, size: int, format_id: str, *, block_size: int = DEFAULT_BLOCK,
                      plan: TensorPlan | None = None) -> tuple[str, tuple[TensorPrint, ...]]:
    """(hex SHA-256, tensor prints) of the open file. The layout comes from the header (small bounded
    reads), or from `plan` when the identification already parsed it; the tensor data is read once, by
    the hash pass, and sampled as it goes by."""
    spans = list((plan if plan is not None else plan_tensors(fd, size, format_id)).spans)
    if not spans:
        return sha256_fd(fd, size, block_size=block_size), ()
    sampler = TensorSampler(spans, size)
    digest = sha256_fd(fd, size, block_size=block_size, on_block=sampler.feed)
    return digest, sampler.prints()


def sample_tensors(fd: int, size: int, format_id: str, *,
                   plan: TensorPlan | None = None) -> tuple[TensorPrint, ...]:
    """Tensor prints without a hash pass (the SHA-256 is known): small reads of the sampled elements only."""
    spans = list((plan if plan is not None else plan_tensors(fd, size, format_id)).spans)
    return sample_by_reads(fd, spans, size)
