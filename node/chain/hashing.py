"""Keccak-256, the hash of the execution layer (Yellow Paper, appendix B; FIPS-202
Keccak with the original 0x01 padding, *not* SHA3-256)."""

from __future__ import annotations

import sha3  # safe-pysha3: C implementation

_keccak = sha3.keccak_256

EMPTY_KECCAK = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
"""keccak256(b"") -- the codeHash of an account without code."""


def keccak256(data: bytes) -> bytes:
    """Return the 32-byte Keccak-256 digest of ``data``."""
    return _keccak(data).digest()
