"""Sealing at rest: cold model files encrypted in place (AES-256-GCM in authenticated chunks).

- `keys`: the machine's X25519 key pair in the agent's data dir and the data-key wrapping (ephemeral-static
  X25519 + HKDF-SHA256 + AES-256-GCM), for the machine and optionally an organisation escrow key.
- `container`: the sealed file format (documented byte by byte there), streaming encrypt / decrypt / verify.
- `inplace`: crash-safe sealing and unsealing of a file where it is (temporary file, fsync, rename, fsync).
"""
