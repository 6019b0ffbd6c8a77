"""File fingerprints: streaming SHA-256, a constant-time quick fingerprint, and a cache keyed by file identity."""

from weightwarden.agent.fingerprint.cache import CachedResult, FileKey, FingerprintCache
from weightwarden.agent.fingerprint.one_pass import hash_with_tensors, sample_tensors
from weightwarden.agent.fingerprint.quick import quick_fingerprint
from weightwarden.agent.fingerprint.sha256 import FileChangedError, is_sparse, sha256_fd

__all__ = [
    "CachedResult",
    "FileChangedError",
    "FileKey",
    "FingerprintCache",
    "hash_with_tensors",
    "is_sparse",
    "quick_fingerprint",
    "sample_tensors",
    "sha256_fd",
]
